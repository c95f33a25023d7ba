// Opening the byte stream a connection runs over: TCP, Unix socket, an existing socket or fd,
// a subprocess on a socketpair (nbd_connect_command), or systemd socket activation.
import type { ChildProcess } from 'node:child_process';
import { spawn } from '../sys/spawn.js';
import { closeSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import { earlyExitError, spawnActivatedServer } from './activation.js';
import { stopChild, trackChild } from './children.js';
import { debug } from './debug.js';

/**
 * Where connect() finds the server: an NBD URI (`nbd://`, `nbds://`, `nbd+unix://`,
 * `nbds+unix://`), a Unix socket, a TCP host and port (default 10809), a vsock address, a
 * server to run with its stdin/stdout as the connection (`command`, as nbd_connect_command),
 * a server to start with systemd socket activation (`activation`, as
 * nbd_connect_systemd_socket_activation), or a descriptor or stream already connected.
 */
export type ConnectTarget =
  | string
  | { unixSocket: string }
  /** `port`: a number, digits, or a service name from /etc/services ('nbd'); default 10809. */
  | { host: string; port?: number | string }
  | { vsock: { cid: number; port?: number } }
  | { command: string[] }
  | { activation: string[] }
  | { fd: number }
  | { socket: Duplex };

/** An open byte stream to a server, before the handshake. */
export interface Transport {
  /** The connection's bytes. */
  stream: Duplex;
  /** Where we connected, for the connection's URI (undefined for commands, fds, sockets). */
  address: { unixSocket?: string; host?: string; port?: number };
  /** Stops a subprocess and removes temp files; safe to call twice. */
  cleanup(): Promise<void>;
  /**
   * Rejects, with why, when a subprocess server ends before cleanup(): a connection that
   * fails while setting up reports that instead of a reset socket.
   */
  serverExit?: Promise<never>;
  /** Another connection to the same server (socket activation), owned by this transport. */
  reconnect?: () => Promise<Transport>;
  /**
   * Sockets we read with a reused buffer: `choose` may name, before each read, a buffer the
   * next bytes should go to instead (undefined = the shared one). Data events then carry a
   * view of that buffer. Absent on streams we did not open (TLS layers, fds, commands).
   */
  setReadTarget?: (choose: (() => Uint8Array | undefined) | null) => void;
}

/** Size of the reusable receive buffer of sockets we open ourselves. */
const RECEIVE_BUFFER_SIZE = 1 << 20;

/** setReadTarget of the sockets connectNet made with a reused buffer. */
const readTargets = new WeakMap<net.Socket, NonNullable<Transport['setReadTarget']>>();

/**
 * With `reuseBuffer`, the kernel's bytes land in one per-connection buffer (net's `onread`)
 * instead of a fresh 64 KiB Buffer per read: fewer syscalls and no garbage on the hot path.
 * The chunks are re-emitted as 'data' and are only valid during the event, so every consumer
 * must copy what it keeps (the handshake reader and the reply parser both do).
 */
function connectNet(opts: net.NetConnectOpts, what: string, reuseBuffer = false): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let sock: net.Socket;
    if (reuseBuffer) {
      const shared = Buffer.allocUnsafe(RECEIVE_BUFFER_SIZE);
      let choose: (() => Uint8Array | undefined) | null = null;
      // Node asks this function for the buffer of every next read.
      const nextBuffer = (): Uint8Array => (choose === null ? shared : choose() ?? shared);
      sock = net.connect({
        ...opts,
        onread: { buffer: nextBuffer, callback: (n: number, buf: Uint8Array) => { sock.emit('data', (buf as Buffer).subarray(0, n)); } },
      } as unknown as net.NetConnectOpts);
      readTargets.set(sock, (fn) => { choose = fn; });
    } else {
      sock = net.connect(opts);
    }
    const onError = (err: NodeJS.ErrnoException): void => {
      sock.destroy();
      const code = err.code === 'ECONNREFUSED' ? 'ECONNREFUSED' : err.code === 'ENOENT' ? 'ENOENT' : 'EIO';
      reject(new NbdError(code, `connect: ${what}: ${describeSocketError(err)}`, { cause: err }));
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      sock.setNoDelay?.(true);
      resolve(sock);
    });
  });
}

function noCleanup(): Promise<void> {
  return Promise.resolve();
}

export async function openUnix(path: string, reuseBuffer = false): Promise<Transport> {
  const stream = await connectNet({ path }, path, reuseBuffer);
  return { stream, address: { unixSocket: path }, cleanup: noCleanup, setReadTarget: readTargets.get(stream) };
}

export async function openTcp(host: string, port: number, reuseBuffer = false): Promise<Transport> {
  const stream = await connectNet({ host, port }, `${host}:${port}`, reuseBuffer);
  return { stream, address: { host, port }, cleanup: noCleanup, setReadTarget: readTargets.get(stream) };
}

export function openFd(fd: number): Transport {
  const stream = new net.Socket({ fd, readable: true, writable: true });
  return { stream, address: {}, cleanup: noCleanup };
}

/**
 * Stops the subprocess as libnbd does when its handle closes: SIGTERM at once (the client has
 * already said goodbye), then reap it. Waiting for a server to notice the closed socket and
 * leave by itself cost about 200 ms per run.
 */
function childCleanup(child: ChildProcess, after?: () => void): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= stopChild(child).finally(() => after?.());
    return done;
  };
}

function spawnFailure(child: ChildProcess, argv: string[]): Promise<never> {
  return new Promise((_, reject) => {
    child.once('error', (err) => reject(new NbdError('ENOENT', `cannot run ${argv[0]}: ${err.message}`, { cause: err })));
  });
}

/** Runs `argv` with its stdin and stdout on one end of a socketpair (like nbd_connect_command). */
export async function openCommand(argv: string[]): Promise<Transport> {
  if (argv.length === 0) throw new NbdError('EINVAL', 'connect: empty command');
  // Loaded on demand: loading koffi adds to the start-up of every run, and plain URI connections never need it.
  const { socketPair } = await import('../sys/socket.js');
  const [ours, theirs] = socketPair();
  let child: ChildProcess;
  try {
    child = spawn(argv[0]!, argv.slice(1), { stdio: [theirs, theirs, 'inherit'] });
  } finally {
    closeSync(theirs);
  }
  trackChild(child);
  debug(() => `started command ${argv.join(' ')} (pid ${child.pid})`);
  const failed = spawnFailure(child, argv);
  failed.catch(() => undefined);
  await Promise.race([new Promise((r) => setImmediate(r)), failed]);
  const stream = new net.Socket({ fd: ours, readable: true, writable: true });
  return { stream, address: {}, cleanup: childCleanup(child) };
}

/**
 * Starts `argv` with a listening Unix socket on fd 3 and LISTEN_FDS=1 / LISTEN_PID=<its pid>
 * (systemd socket activation, as libnbd does for nbdcopy's `[ CMD ARGS ]`), then connects.
 */
export async function openActivation(argv: string[], reuseBuffer = false): Promise<Transport> {
  if (argv.length === 0) throw new NbdError('EINVAL', 'connect: empty command');
  const { child, socketPath: path, removeDir } = await spawnActivatedServer(argv, 'nbd-activation-');
  debug(() => `started ${argv.join(' ')} with socket activation on ${path} (pid ${child.pid})`);
  let stopping = false;
  const stopChildAndDir = childCleanup(child, removeDir);
  const cleanup = (): Promise<void> => {
    stopping = true;
    return stopChildAndDir();
  };
  const serverExit = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      // Once we stop it (SIGTERM; nbdkit then exits 0), only an ending of its own is news.
      const ownEnding = (code !== null && code !== 0) || (signal !== null && signal !== 'SIGTERM');
      if (!stopping || ownEnding) reject(earlyExitError(argv[0]!, code, signal));
    });
  });
  serverExit.catch(() => undefined);
  try {
    // The socket is already listening, so connect succeeds while the server is still starting.
    const stream = await Promise.race([connectNet({ path }, path, reuseBuffer), spawnFailure(child, argv)]);
    // The activated server listens on `path` until the first connection closes: its URI
    // reaches the same server meanwhile, as libnbd's get_uri does for socket activation.
    const reconnect = (): Promise<Transport> => openUnix(path, reuseBuffer);
    return { stream, address: { unixSocket: path }, cleanup, reconnect, serverExit, setReadTarget: readTargets.get(stream) };
  } catch (err) {
    const why = await serverExitWithin(serverExit, err);
    await cleanup();
    throw why;
  }
}

/** How long a failed connection waits to learn that its server died, the likelier cause. */
const EXIT_GRACE_MS = 500;

/**
 * `err`, or the server's early exit when it comes within a moment: a connection to a server
 * that died fails with a reset socket first, and the exit says what really happened.
 */
export function serverExitWithin(serverExit: Promise<never> | undefined, err: unknown): Promise<unknown> {
  if (serverExit === undefined) return Promise.resolve(err);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(err), EXIT_GRACE_MS);
    serverExit.catch((exitErr: unknown) => {
      clearTimeout(timer);
      resolve(exitErr);
    });
  });
}

/** Node's messages repeat the address ("connect ECONNREFUSED 127.0.0.1:1"); say what happened
 * in the words of strerror, as libnbd's tools do, and keep Node's text for anything else. */
const SOCKET_ERROR_TEXT: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ETIMEDOUT: 'Connection timed out',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  ENOTSOCK: 'Socket operation on non-socket',
  ENOTFOUND: 'Name or service not known',
};

function describeSocketError(err: NodeJS.ErrnoException): string {
  return (err.code !== undefined ? SOCKET_ERROR_TEXT[err.code] : undefined) ?? err.message;
}
