// AF_VSOCK (host <-> virtual machine sockets), which Node's net lacks: the sockets are made
// with the raw syscalls and then handed to libuv as stream handles, so reads and writes are
// as event-driven as a TCP socket's (libuv's stream code works on any connected socket fd).
import { closeSync } from 'node:fs';
import net from 'node:net';
import { getSystemErrorMap } from 'node:util';
import { NbdError, type ErrnoCode } from '../protocol/errors.js';
import { lastErrno, loadLibc } from './libc.js';

const AF_VSOCK = 40;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const POLLOUT = 4;
const EINPROGRESS = 115;
/** Listen on every CID this machine has. */
export const VMADDR_CID_ANY = 0xffff_ffff;
const SOCKADDR_VM_SIZE = 16;

interface VsockCalls {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, value: Int32Array, len: Int32Array) => number;
  poll: { async: (fds: Buffer, n: number, timeout: number, cb: (err: unknown, r: number) => void) => void };
}

let calls: VsockCalls | undefined;

function load(): VsockCalls {
  if (calls) return calls;
  const libc = loadLibc();
  calls = {
    socket: libc.func('int socket(int, int, int)') as VsockCalls['socket'],
    bind: libc.func('int bind(int, const void *addr, uint32_t len)') as VsockCalls['bind'],
    listen: libc.func('int listen(int, int)') as VsockCalls['listen'],
    connect: libc.func('int connect(int, const void *addr, uint32_t len)') as VsockCalls['connect'],
    getsockopt: libc.func('int getsockopt(int, int, int, _Out_ int *value, _Inout_ int *len)') as VsockCalls['getsockopt'],
    // Waiting for a connection to finish blocks, so it runs on one of koffi's worker threads.
    poll: libc.func('int poll(void *fds, unsigned long n, int timeout)') as unknown as VsockCalls['poll'],
  };
  return calls;
}

/** struct sockaddr_vm: family, reserved, port, cid (host order), flags, padding: 16 bytes. */
export function encodeSockaddrVm(cid: number, port: number): Buffer {
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffff_ffff) throw new NbdError('EINVAL', `vsock: invalid CID ${cid}`);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff_ffff) throw new NbdError('EINVAL', `vsock: invalid port ${port}`);
  const addr = Buffer.alloc(SOCKADDR_VM_SIZE);
  addr.writeUInt16LE(AF_VSOCK, 0);
  addr.writeUInt32LE(port, 4);
  addr.writeUInt32LE(cid, 8);
  return addr;
}

const CODES: Record<string, ErrnoCode> = {
  ECONNREFUSED: 'ECONNREFUSED', ETIMEDOUT: 'ETIMEDOUT', ECONNRESET: 'ECONNRESET', EACCES: 'EACCES', EPERM: 'EPERM',
};

/** An errno as strerror says it, in one line with what we were doing. */
export function vsockError(what: string, errno: number): NbdError {
  const [name, text] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, `errno ${errno}`];
  const hint = name === 'ENODEV' || name === 'EAFNOSUPPORT' || name === 'EADDRNOTAVAIL'
    ? ' (no AF_VSOCK transport for it on this machine)' : '';
  return new NbdError(CODES[name] ?? 'EIO', `${what}: ${text.charAt(0).toUpperCase()}${text.slice(1)}${hint}`);
}

function tcpWrap(): { TCP: new (type: number) => { open(fd: number): number }; constants: { SOCKET: number; SERVER: number } } {
  // libuv's TCP handle is its generic stream socket: open() takes any connected or listening
  // socket fd. Node keeps this binding for exactly such fds (it is what net uses inside).
  return (process as unknown as { binding(name: string): never }).binding('tcp_wrap');
}

/** A connected stream socket to vsock CID:PORT. */
export async function connectVsock(cid: number, port: number, timeoutMs = 30_000): Promise<net.Socket> {
  const c = load();
  const what = `connect to vsock CID ${cid} port ${port}`;
  const addr = encodeSockaddrVm(cid, port);
  const fd = c.socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw vsockError(what, lastErrno());
  try {
    if (c.connect(fd, addr, SOCKADDR_VM_SIZE) !== 0) {
      const errno = lastErrno();
      if (errno !== EINPROGRESS) throw vsockError(what, errno);
      const pollfd = Buffer.alloc(8);
      pollfd.writeInt32LE(fd, 0);
      pollfd.writeInt16LE(POLLOUT, 4);
      const ready = await new Promise<number>((resolve, reject) => {
        c.poll.async(pollfd, 1, timeoutMs, (err, r) => (err ? reject(err) : resolve(r)));
      });
      if (ready === 0) throw new NbdError('ETIMEDOUT', `${what}: no answer after ${timeoutMs / 1000} s`);
      const value = new Int32Array(1);
      const len = new Int32Array([4]);
      if (c.getsockopt(fd, SOL_SOCKET, SO_ERROR, value, len) !== 0) throw vsockError(what, lastErrno());
      if (value[0] !== 0) throw vsockError(what, value[0]!);
    }
    const { TCP, constants } = tcpWrap();
    const handle = new TCP(constants.SOCKET);
    const r = handle.open(fd);
    if (r !== 0) throw vsockError(what, -r);
    return new net.Socket({ handle, readable: true, writable: true } as net.SocketConstructorOpts);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** A libuv server handle listening on vsock PORT for any CID, for net.Server#listen(handle). */
export function listenVsock(port: number, backlog = 16): object {
  const c = load();
  const what = `listen on vsock port ${port}`;
  const addr = encodeSockaddrVm(VMADDR_CID_ANY, port);
  const fd = c.socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw vsockError(what, lastErrno());
  try {
    if (c.bind(fd, addr, SOCKADDR_VM_SIZE) !== 0) throw vsockError(what, lastErrno());
    if (c.listen(fd, backlog) !== 0) throw vsockError(what, lastErrno());
    const { TCP, constants } = tcpWrap();
    const handle = new TCP(constants.SERVER);
    const r = handle.open(fd);
    if (r !== 0) throw vsockError(what, -r);
    return handle;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

