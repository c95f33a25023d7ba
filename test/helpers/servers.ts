// Start real NBD servers (nbdkit, qemu-nbd, nbd-server) for tests on private Unix sockets in
// fresh temp dirs, and always reap them. Shared by every test file that needs a server. Servers
// run under execa: killed when the test process exits (its cleanup), SIGKILL 3 s after a
// SIGTERM that was not obeyed, and a server that cannot start is named with its command line.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { execa, type Result } from 'execa';
import { makeTempDir } from './temp.js';
import { join } from 'node:path';

export interface RunningServer {
  /** nbd+unix URI of the export (or nbd://127.0.0.1:PORT/... for TCP). */
  uri: string;
  /** Unix socket path ('' for TCP servers). */
  socket: string;
  /** TCP port, when listening on TCP. */
  port?: number;
  /** Private temp dir; removed by stop(). Tests may put files here. */
  dir: string;
  pid: number;
  /** Kills the server (SIGTERM, then SIGKILL), waits until reaped, removes the temp dir. */
  stop(): Promise<void>;
}

/** What tests may do with a server process: see its pid and state, signal it. */
export type ServerChild = Pick<ChildProcess, 'pid' | 'exitCode' | 'signalCode' | 'kill'>;

function unixUri(socket: string, exportName = ''): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socket}`;
}

async function waitFor(cond: () => boolean | Promise<boolean>, server: SpawnedServer, what: string, waitMs = 10_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const ended = server.ended();
    if (ended !== undefined) {
      // A server that could not start at all: execa's message names the command and the reason.
      const why = ended.exitCode === undefined && ended.signal === undefined ? ended.shortMessage : ended.signal ?? ended.exitCode;
      throw new Error(`${what} exited early (${why}): ${server.stderr().trim()}`);
    }
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${waitMs / 1000} s: ${server.stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The socket file can exist a moment before the server listens: probe with a connect. */
export function canConnectUnix(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return canConnect({ path });
}

function canConnectTcp(port: number): Promise<boolean> {
  return canConnect({ host: '127.0.0.1', port });
}

function canConnect(opts: net.NetConnectOpts): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(opts);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function stopper(server: SpawnedServer, dir: string): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= (async () => {
      if (server.ended() === undefined) {
        server.child.kill('SIGTERM'); // execa sends SIGKILL if it is still there after 3 s
        await server.finished;
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return done;
  };
}

interface SpawnedServer {
  child: ServerChild;
  /** Resolves once the process has exited and its stderr is read to the end. */
  finished: Promise<Result>;
  /** The result, once finished. */
  ended(): Result | undefined;
  stderr: () => string;
}

function spawnServer(cmd: string, args: string[], env?: NodeJS.ProcessEnv): SpawnedServer {
  const child = execa(cmd, args, {
    stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', env: env ?? process.env, extendEnv: false,
    buffer: false, reject: false, forceKillAfterDelay: 3000,
  });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (err.length < 65536) err += d;
  });
  let result: Result | undefined;
  const finished = child.then((r) => (result = r));
  return { child, finished, ended: () => result, stderr: () => err };
}

export interface SocketServerProcess {
  child: ServerChild;
  /** What the server wrote on stderr (the first 64 KiB). */
  stderr(): string;
  /** SIGTERM (SIGKILL after 3 s), waits until reaped, removes the server's temp dir. */
  stop(): Promise<void>;
}

/**
 * Spawns `cmd ARGS...` as a server that listens on the Unix socket `socket` inside its temp
 * dir `dir`, and waits until the socket accepts connections. When the server exits first or
 * does not listen within `waitMs`, it is stopped (dir removed) and the promise rejects with
 * its stderr.
 */
export async function spawnSocketServer(
  cmd: string, args: string[], socket: string, dir: string, what: string, waitMs = 10_000,
): Promise<SocketServerProcess> {
  const server = spawnServer(cmd, args);
  const stop = stopper(server, dir);
  try {
    await waitFor(() => canConnectUnix(socket), server, what, waitMs);
  } catch (e) {
    await stop();
    throw e;
  }
  return { child: server.child, stderr: server.stderr, stop };
}

export interface StartOptions {
  /** Export name used in the returned URI (default ''). */
  exportName?: string;
  /** Reuse an existing temp dir (e.g. with test files in it). */
  dir?: string;
}

/**
 * `nbdkit -f -U <sock> ARGS...` (foreground, so the test owns and reaps it).
 * Example: startNbdkit(['memory', '1M']), startNbdkit(['-o', 'pattern', '1M']),
 * startNbdkit(['--filter=error', 'memory', '1M', 'error-rate=1']).
 */
export async function startNbdkit(args: string[], opts: StartOptions = {}): Promise<RunningServer> {
  const dir = opts.dir ?? makeTempDir('nbdkit-');
  const socket = join(dir, 'nbdkit.sock');
  const { child, stop } = await spawnSocketServer('nbdkit', ['-f', '-U', socket, ...args], socket, dir, `nbdkit ${args.join(' ')}`);
  return { uri: unixUri(socket, opts.exportName), socket, dir, pid: child.pid!, stop };
}

/**
 * `qemu-nbd -k <sock> --persistent ARGS...` (ARGS end with the image; add '-f', 'qcow2' etc.).
 * Export name is '' unless ARGS include `-x NAME` (pass it in opts.exportName too).
 */
export async function startQemuNbd(args: string[], opts: StartOptions = {}): Promise<RunningServer> {
  const dir = opts.dir ?? makeTempDir('qemu-nbd-');
  const socket = join(dir, 'qemu-nbd.sock');
  const { child, stop } = await spawnSocketServer(
    'qemu-nbd', ['-k', socket, '--persistent', ...args], socket, dir, `qemu-nbd ${args.join(' ')}`,
  );
  return { uri: unixUri(socket, opts.exportName), socket, dir, pid: child.pid!, stop };
}

export interface NbdServerExport {
  name: string;
  file: string;
  readOnly?: boolean;
}

/**
 * nbd-server with a generated config, on a Unix socket by default or on 127.0.0.1:<free port>
 * with { tcp: true }. The URI names the first export. nbd-server daemonizes (in the foreground
 * with -d it serves one client only), so we follow its pid file and also kill the per-client
 * children it forked when stopping.
 */
export async function startNbdServer(exports: NbdServerExport[], opts: StartOptions & { tcp?: boolean } = {}): Promise<RunningServer> {
  const dir = opts.dir ?? makeTempDir('nbd-server-');
  const socket = opts.tcp ? '' : join(dir, 'nbd-server.sock');
  const port = opts.tcp ? await freePort() : undefined;
  const pidFile = join(dir, 'nbd-server.pid');
  const lines = ['[generic]', '  allowlist = true'];
  if (port !== undefined) lines.push(`  port = ${port}`, '  listenaddr = 127.0.0.1');
  else lines.push(`  unixsock = ${socket}`);
  for (const e of exports) {
    lines.push(`[${e.name}]`, `  exportname = ${e.file}`);
    if (e.readOnly) lines.push('  readonly = true');
  }
  const conf = join(dir, 'nbd-server.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  const launcher = spawnSync('nbd-server', ['-C', conf, '-p', pidFile], { encoding: 'utf8', timeout: 10_000 });
  if (launcher.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`nbd-server failed to start: ${launcher.stderr || launcher.error}`);
  }
  let pid = 0;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (existsSync(pidFile)) pid = Number(readFileSync(pidFile, 'utf8').trim()) || 0;
    const listening = port !== undefined ? await canConnectTcp(port) : await canConnectUnix(socket);
    if (pid && listening) break;
    if (Date.now() > deadline) {
      if (pid) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error('nbd-server did not start within 10 s');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  daemons.add(pid);
  let done: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    done ??= (async () => {
      for (const p of [...childrenOf(pid), pid]) killQuietly(p, 'SIGTERM');
      const until = Date.now() + 3000;
      while (!processGone(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      for (const p of [...childrenOf(pid), pid]) killQuietly(p, 'SIGKILL');
      daemons.delete(pid);
      rmSync(dir, { recursive: true, force: true });
    })();
    return done;
  };
  const name = opts.exportName ?? exports[0]?.name ?? '';
  const uri = port !== undefined ? `nbd://127.0.0.1:${port}/${encodeURIComponent(name)}` : unixUri(socket, name);
  const server: RunningServer = { uri, socket, dir, pid, stop };
  if (port !== undefined) server.port = port;
  return server;
}

const daemons = new Set<number>();
process.on('exit', () => {
  for (const pid of daemons) killQuietly(pid, 'SIGKILL');
});

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when process `pid` no longer runs (gone, or a zombie waiting for a parent not ours). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Strict: true only when `pid` is fully gone (a zombie still counts as not reaped). */
export function processReaped(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}
