// Starting an NBD server with systemd socket activation, as libnbd does for `[ CMD ARGS ]`:
// we make the listening Unix socket in a private directory and hand it to the child as fd 3
// with LISTEN_FDS=1 and LISTEN_PID set to the child's own pid. Used by the client's
// `{ activation }` transport and by nbdcopy, which owns its servers for multi-conn.
import type { ChildProcess } from 'node:child_process';
import { spawn } from '../sys/spawn.js';
import { accessSync, closeSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdError } from '../protocol/errors.js';
import { trackChild } from './children.js';

export interface ActivatedServer {
  child: ChildProcess;
  /** The socket is already listening when this returns: connects succeed while the server starts. */
  socketPath: string;
  /** Removes the private socket directory; call once the child is gone. */
  removeDir(): void;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Fails with one line when `name` cannot be run, before a shell would print its own complaint
 * and the connection would fail on a socket the user never named. A shell builtin or a PATH
 * the shell sees differently still works: then the exit status says what happened.
 */
function checkCommand(name: string): void {
  if (name.includes('/')) {
    if (!isExecutableFile(name)) throw new NbdError('ENOENT', `${name}: command not found`);
    return;
  }
  const dirs = (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':');
  if (!dirs.some((dir) => isExecutableFile(join(dir === '' ? '.' : dir, name)))) {
    throw new NbdError('ENOENT', `${name}: command not found`);
  }
}

/** Why a server subprocess ended before it served anything, in one phrase. */
export function earlyExitError(name: string, code: number | null, signal: NodeJS.Signals | null): NbdError {
  if (signal !== null) return new NbdError('ECONNRESET', `${name}: killed by ${signal} before serving`);
  if (code === 127) return new NbdError('ENOENT', `${name}: command not found`);
  return new NbdError('ECONNRESET', `${name}: exited with status ${code} before serving`);
}

/**
 * Starts `argv` with a listening socket passed by systemd socket activation. Its stderr is ours
 * unless `onStderr` takes it (a caller drawing a progress bar must place the server's lines).
 */
export async function spawnActivatedServer(
  argv: string[], dirPrefix: string, onStderr?: (text: string) => void,
): Promise<ActivatedServer> {
  checkCommand(argv[0] ?? '');
  // Loaded on demand: koffi adds to the start-up of every run, and plain URI connections never need it.
  const { listenUnix } = await import('../sys/socket.js');
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  const socketPath = join(dir, 'sock');
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  let listenFd: number;
  try {
    listenFd = listenUnix(socketPath);
  } catch (err) {
    removeDir();
    throw err;
  }
  let child: ChildProcess;
  try {
    // LISTEN_PID must be the server's own pid: the shell learns it as $$, then execs.
    child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$@"', 'sh', ...argv], {
      stdio: ['ignore', 'ignore', onStderr === undefined ? 'inherit' : 'pipe', listenFd],
      env: { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: 'nbd' },
    });
  } finally {
    closeSync(listenFd);
  }
  if (onStderr !== undefined) {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', onStderr);
  }
  trackChild(child);
  return { child, socketPath, removeDir };
}
