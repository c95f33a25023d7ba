// nbdcopy: argv -> options -> open endpoints -> copy -> close. Errors end as one line.
import { NbdError } from '../protocol/errors.js';
import { runCli } from './report-error.js';
import { endBySignal, Interrupted, onStopSignals, type StopSignal } from './signals.js';
import { longOptionsText, parseNbdcopyArgs, shortOptionsText, type NbdcopyArgs } from './nbdcopy-args.js';
import { NBDCOPY_USAGE, nbdcopyVersion } from './nbdcopy-help.js';
import { checkProgressFd, makeProgress, takeClosedFds, type ProgressSink } from './nbdcopy-progress.js';
import { copy } from '../copy/api.js';
import { parseEndpointSpec } from '../copy/spec.js';
import { endpointLines, runLine, runShape } from './nbdcopy-summary.js';
import { copyOptions } from './nbdcopy-copy-options.js';
import { copyOps } from './nbdcopy-ops.js';

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
  if (args.progressJson !== false) checkProgressFd(args.progressJson.fd, closedFds, '--progress-json');
  if (args.batch !== undefined) return (await import('./nbdcopy-batch.js')).batchCommand(args);
  return copyCommand(args);
}

async function copyCommand(args: NbdcopyArgs): Promise<number> {
  const log = args.verbose ? (line: string) => void process.stderr.write(`nbdcopy: ${line}\n`) : undefined;
  const controller = new AbortController();
  let progress: ProgressSink | undefined;
  let signals = 0;
  let copying = false;
  const onSignal = (signal: StopSignal) => {
    signals++;
    controller.abort(new Interrupted(signal));
    // Before the copy starts (a connect or handshake may hang) and on a second signal there
    // is nothing worth waiting for; otherwise in-flight requests get a few seconds to drain
    // and the copy's own clean-up runs. Either way subprocess servers are stopped and reaped
    // before we end by the signal.
    // The bar goes first, so the line saying why starts on a clean line.
    progress?.stop(true);
    if (!copying || signals > 1) void endBySignal('nbdcopy', signal);
    else setTimeout(() => void endBySignal('nbdcopy', signal), DRAIN_TIMEOUT_MS).unref();
  };
  const removeSignalHandlers = onStopSignals(onSignal);
  // libnbd's summary comes first (scripts grep it), so what opening logs waits behind it.
  let held: string[] | undefined = [];
  const copyLog = log === undefined ? undefined : (line: string) => void (held === undefined ? log(line) : held.push(line));
  const release = (): void => {
    for (const line of held ?? []) log?.(line);
    held = undefined;
  };
  const options = copyOptions(args);
  const sourceSpec = parseEndpointSpec(args.source);
  const destinationSpec = parseEndpointSpec(args.destination);
  let done = 0;
  // With -p, text for stderr from elsewhere (JSON lines, a server's lines) goes through the
  // display, which wipes a bar first.
  const throughDisplay = (text: string): void => {
    if (progress !== undefined) progress.write(text);
    else process.stderr.write(text);
  };
  const ops = copyOps(args, log, undefined, args.progress === 'bar' ? throughDisplay : undefined);
  let ok = false;
  try {
    // hrtime, not performance.now(): the global `performance` loads perf_hooks on first use,
    // start-up time every copy would pay for one verbose log line.
    const started = process.hrtime.bigint();
    const result = await copy(sourceSpec, destinationSpec, {
      ...options,
      ...ops.request,
      log: copyLog,
      signal: controller.signal,
      // With -p, a server's lines go through the display (a bar is wiped for them first).
      serverStderr: args.progress !== 'bar' ? undefined : throughDisplay,
      observers: [{
        async start({ source, destination }) {
          if (log !== undefined) {
            for (const line of endpointLines('src', sourceSpec, source)) log(line);
            for (const line of endpointLines('dst', destinationSpec, destination, source.size)) log(line);
            log(runLine(runShape(source, destination, options)));
            release();
          }
          progress = await makeProgress(args.progress, source.size);
          copying = true;
        },
        done(_offset, length) {
          done += length;
          progress!.update(done);
        },
      }, ...ops.observers],
    });
    progress?.finish();
    log?.(`copied ${result.bytes} bytes in ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(3)} s`);
    if (result.blockHash !== undefined) await writeBlockHash(result.blockHash, args.blkhashFile);
    ok = true;
    ops.succeeded(result, result.blockHash);
  } catch (err) {
    // Whatever the abort made fail, the signal is what ended the copy.
    const reason = controller.signal.reason instanceof Interrupted ? controller.signal.reason : err;
    ops.failed(reason);
    throw reason;
  } finally {
    release();
    progress?.stop(!ok);
    removeSignalHandlers();
  }
  return 0;
}

/** The block hash, lowercase hex and a newline, on stdout or into FILE (--blkhash-file). */
async function writeBlockHash(hash: string, file: string | undefined): Promise<void> {
  if (file === undefined) {
    process.stdout.write(`${hash}\n`);
    return;
  }
  try {
    // node:fs/promises only here: loading it costs every other copy start-up time.
    await process.getBuiltinModule('node:fs/promises').writeFile(file, `${hash}\n`);
  } catch (err) {
    throw new NbdError('EIO', `--blkhash-file: ${file}: ${(err as Error).message}`);
  }
}
