// The NBD servers a scenario copies from or to. nbdkit when it is installed (the server
// people run), otherwise our embedded bin/nbdserve, so the bench runs anywhere. Each
// server listens on a private Unix socket in the run's temp dir and is stopped at the
// end of its scenario.

import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnTracked, stopChild } from './processes.mjs';
import { sizeArg } from './sizes.mjs';

export const NBDKIT = '/usr/bin/nbdkit';

/** Which server kind to use: forced by --server, else nbdkit when installed. */
export function chooseServerKind(forced, repoRoot) {
  if (forced === 'nbdkit' || forced === 'nbdserve') return forced;
  if (existsSync(NBDKIT)) return 'nbdkit';
  if (existsSync(join(repoRoot, 'bin/nbdserve'))) return 'nbdserve';
  throw new Error('no NBD server: install nbdkit, or build bin/nbdserve (npm run build)');
}

/**
 * The argv that starts one server.
 * spec: { backend: 'pattern'|'memory'|'null'|'sparse-random'|'file', size, path?, delayReadMs?,
 *   delayWriteMs?, rateBits?, threads? }
 * rateBits is nbdkit's rate filter limit in bits per second ('1600M' is about 200 MB/s); our
 * nbdserve has no rate limit, so a scenario that needs one cannot run on it.
 */
export function serverArgv(kind, spec, socket, repoRoot) {
  if (kind === 'nbdkit') {
    const argv = [NBDKIT, '-U', socket, '-f', '--exit-with-parent'];
    if (spec.threads) argv.push('-t', String(spec.threads));
    // The rate filter goes first (outermost): the delay is then added to a request after the
    // link has carried it, as on a real slow, distant link.
    if (spec.rateBits) argv.push('--filter=rate');
    if (spec.delayReadMs || spec.delayWriteMs) argv.push('--filter=delay');
    if (spec.backend === 'file') argv.push('file', `file=${spec.path}`);
    else argv.push(spec.backend, `size=${sizeArg(spec.size)}`);
    if (spec.rateBits) argv.push(`rate=${spec.rateBits}`);
    if (spec.delayReadMs) argv.push(`delay-read=${spec.delayReadMs}ms`);
    if (spec.delayWriteMs) argv.push(`delay-write=${spec.delayWriteMs}ms`);
    return argv;
  }
  if (spec.rateBits) throw new Error('nbdserve has no rate limit: this scenario needs nbdkit');
  const argv = [join(repoRoot, 'bin/nbdserve'), '-U', socket, '--exit-with-parent'];
  if (spec.delayReadMs) argv.push('--delay', `read=${spec.delayReadMs}`);
  if (spec.delayWriteMs) argv.push('--delay', `write=${spec.delayWriteMs}`);
  if (spec.backend === 'file') argv.push('file', spec.path);
  else argv.push(spec.backend, sizeArg(spec.size));
  return argv;
}

async function canConnect(socket) {
  return new Promise((resolve) => {
    const probe = connect(socket);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Start a server and wait until its socket accepts connections. */
export async function startServer({ kind, spec, tmpDir, name, repoRoot, readyTimeoutMs = 15000 }) {
  const socket = join(tmpDir, `${name}.sock`);
  const logPath = join(tmpDir, `${name}.log`);
  const argv = serverArgv(kind, spec, socket, repoRoot);
  const log = createWriteStream(logPath);
  const handle = spawnTracked(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  // Two sources share one log: neither may end it, or the other one writes after its end.
  handle.child.stdout.pipe(log, { end: false });
  handle.child.stderr.pipe(log, { end: false });
  let exited = null;
  void handle.done.then((result) => {
    exited = result;
  });
  handle.child.once('close', () => log.end());

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) {
      const why = exited.error ? exited.error.message : `exited with status ${exited.code ?? exited.signal}`;
      throw new Error(`${argv.join(' ')}: ${why}: ${tail(logPath)}`);
    }
    if (existsSync(socket) && (await canConnect(socket))) break;
    if (Date.now() > deadline) {
      await stopChild(handle);
      throw new Error(`${argv.join(' ')}: socket not ready after ${readyTimeoutMs / 1000} s: ${tail(logPath)}`);
    }
    await sleep(20);
  }

  return {
    kind,
    socket,
    uri: `nbd+unix:///?socket=${socket}`,
    command: argv,
    pid: handle.child.pid,
    stop: () => stopChild(handle),
  };
}

function tail(path) {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}
