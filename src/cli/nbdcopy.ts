// nbdcopy: argv -> options -> open endpoints -> copy -> close. Errors end as one line.
import { NbdError } from '../protocol/errors.js';
import { runCli } from './report-error.js';
import { longOptionsText, parseNbdcopyArgs, shortOptionsText, type NbdcopyArgs } from './nbdcopy-args.js';
import { NBDCOPY_USAGE, nbdcopyVersion } from './nbdcopy-help.js';
import { checkProgressFd, makeProgress, takeClosedFds, type ProgressSink } from './nbdcopy-progress.js';
import { copy } from '../copy/copier.js';
import { openDestination, openSource } from '../copy/open.js';
import { parseEndpointSpec } from '../copy/spec.js';
import { endpointLines, runLine, runShape } from './nbdcopy-summary.js';
import type { Endpoint } from '../copy/endpoint.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from '../copy/options.js';

/** After ^C, how long requests in flight may take to finish before we exit anyway. */
const DRAIN_TIMEOUT_MS = 5000;

export function main(argv: string[]): void {
  void runCli('nbdcopy', argv, () => run(argv));
}

async function run(argv: string[]): Promise<number> {
  const closedFds = takeClosedFds();
  const args = parseNbdcopyArgs(argv);
  if (args.action === 'help') {
    process.stdout.write(NBDCOPY_USAGE);
    return 0;
  }
  if (args.action === 'version') {
    process.stdout.write(nbdcopyVersion());
    return 0;
  }
  if (args.action === 'long-options') {
    process.stdout.write(longOptionsText());
    return 0;
  }
  if (args.action === 'short-options') {
    process.stdout.write(shortOptionsText());
    return 0;
  }
  if (typeof args.progress === 'object') checkProgressFd(args.progress.fd, closedFds);
  return copyCommand(args);
}

function copyOptions(args: NbdcopyArgs): CopyOptions {
  // libnbd's nbdcopy opens no more connections than threads (-T, default: the cores), since
  // each of its threads serves one connection. Ours serves every connection from one event
  // loop, where more connections keep more server threads busy (pattern 4G -> null: on
  // 2 cores, 1.83 s with 2 connections, 1.68 s with 4): -T caps them only when given.
  const connections = Math.min(args.connections ?? DEFAULT_COPY_OPTIONS.connections, args.threads > 0 ? args.threads : Infinity);
  return {
    connections,
    requests: args.requests,
    requestSize: args.requestSize,
    queueSize: args.queueSize,
    sparseSize: args.sparse,
    allocated: args.allocated,
    destinationIsZero: args.destinationIsZero,
    noExtents: args.noExtents,
    flush: args.flush,
    synchronous: args.synchronous,
  };
}

async function copyCommand(args: NbdcopyArgs): Promise<number> {
  const log = args.verbose ? (line: string) => void process.stderr.write(`nbdcopy: ${line}\n`) : undefined;
  const controller = new AbortController();
  let source: Endpoint | undefined;
  let destination: Endpoint | undefined;
  let progress: ProgressSink | undefined;
  let signals = 0;
  let copying = false;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    const reason = new NbdError('EINTR', `interrupted by ${name}`);
    controller.abort(reason);
    // Before the copy starts (a connect or handshake may hang) and on a second signal there
    // is nothing worth waiting for. Otherwise in-flight requests get a few seconds to drain.
    // Subprocess servers are killed by the client's exit hook either way.
    const forceExit = () => {
      process.stderr.write(`nbdcopy: ${reason.message}\n`);
      process.exit(1);
    };
    if (!copying || signals > 1) forceExit();
    else setTimeout(forceExit, DRAIN_TIMEOUT_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // libnbd's summary comes first (scripts grep it), so what opening logs waits behind it.
  const opening: string[] = [];
  const openLog = log === undefined ? undefined : (line: string) => void opening.push(line);
  let ok = false;
  try {
    const sourceSpec = parseEndpointSpec(args.source);
    const destinationSpec = parseEndpointSpec(args.destination);
    source = await openSource(sourceSpec, { log: openLog });
    destination = await openDestination(destinationSpec, { sourceSize: source.size }, { log: openLog });
    if (log !== undefined) {
      const options = copyOptions(args);
      for (const line of endpointLines('src', sourceSpec, source)) log(line);
      for (const line of endpointLines('dst', destinationSpec, destination, source.size)) log(line);
      log(runLine(runShape(source, destination, options)));
      for (const line of opening.splice(0)) log(line);
      log(`source: ${source.name} size=${source.size ?? 'stream'} connections=${source.connections} max=${source.maxConnections} extents=${source.canExtents}`);
      log(`destination: ${destination.name} size=${destination.size ?? 'any'} zero=${destination.isZero} canZero=${destination.canZero}`);
    }
    if (controller.signal.aborted) throw controller.signal.reason;
    progress = await makeProgress(args.progress, source.size);
    const sink = progress;
    const started = performance.now();
    copying = true;
    // nbdcopy's default -S: 4096 or the destination's preferred block size, whichever is larger.
    const sparseSize = args.sparseExplicit || args.sparse === 0 ? args.sparse : Math.max(args.sparse, destination.preferredBlockSize);
    const result = await copy(source, destination, {
      ...copyOptions(args),
      sparseSize,
      onProgress: (done) => sink.update(done),
      log,
      signal: controller.signal,
    });
    sink.finish();
    log?.(`copied ${result.bytes} bytes in ${((performance.now() - started) / 1000).toFixed(3)} s`);
    ok = true;
  } finally {
    for (const line of opening.splice(0)) log?.(line);
    progress?.stop();
    // On success a failing close (a final flush, a subprocess) is an error worth reporting;
    // after a failure the first error is the one the user needs, so close quietly.
    const closing = await Promise.allSettled([source?.close(), destination?.close()]);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (ok) {
      for (const c of closing) if (c.status === 'rejected') throw c.reason;
    }
  }
  return 0;
}
