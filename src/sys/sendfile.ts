// WRITE payloads straight from a file to a socket: sendfile(2) moves page-cache pages into
// the socket without a copy through user space (on a Unix socket the receiver gets those
// very pages), where pread + write copies every byte twice on our one thread. The socket
// stays non-blocking as libuv set it: the calls here move what fits now and never wait.
import { lastErrno, loadLibc } from './libc.js';

const EAGAIN = 11;
const EINTR = 4;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const SIOCOUTQ = 0x5411;
const F_GETFL = 3;
const O_NONBLOCK = 0o4000;

/** Nothing could move without waiting (EAGAIN). */
export const WOULD_BLOCK = -1;

type SendfileFn = (outFd: number, inFd: number, offset: BigInt64Array, count: number) => number;
type SendFn = (fd: number, buf: Uint8Array, len: number, flags: number) => number;
type IoctlFn = (fd: number, request: number, value: Int32Array) => number;
type FcntlFn = (fd: number, cmd: number, arg: number) => number;

let fns: { sendfile: SendfileFn; send: SendFn; ioctl: IoctlFn; fcntl: FcntlFn } | null | undefined;

/** Loads the calls once; false when the FFI is unavailable (callers then copy as before). */
export function sendfileAvailable(): boolean {
  if (fns !== undefined) return fns !== null;
  try {
    const libc = loadLibc();
    fns = {
      sendfile: libc.func('intptr_t sendfile(int out_fd, int in_fd, _Inout_ int64_t *offset, size_t count)') as SendfileFn,
      send: libc.func('intptr_t send(int fd, const uint8_t *buf, size_t len, int flags)') as SendFn,
      ioctl: libc.func('int ioctl(int fd, unsigned long request, _Out_ int *value)') as IoctlFn,
      fcntl: libc.func('int fcntl(int fd, int cmd, int arg)') as FcntlFn,
    };
  } catch {
    fns = null;
  }
  return fns !== null;
}

/** An errno from one of these calls, with the syscall it came from. */
export class SendError extends Error {
  constructor(readonly syscall: string, readonly errno: number) {
    super(`${syscall}: errno ${errno}`);
  }
}

/** Reused in-out offset of sendfile: no allocation per call. */
const offsetBox = new BigInt64Array(1);
const intBox = new Int32Array(1);

/**
 * Sends up to `count` bytes of file `inFd` from `offset` to socket `outFd`. Returns the bytes
 * sent (0 = the file ends at `offset`), or WOULD_BLOCK when the socket has no room at all.
 * Throws SendError for anything else (EPIPE, ECONNRESET, EIO ...).
 */
export function sendFileNow(outFd: number, inFd: number, offset: number, count: number): number {
  offsetBox[0] = BigInt(offset);
  for (;;) {
    const n = fns!.sendfile(outFd, inFd, offsetBox, count);
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return WOULD_BLOCK;
    throw new SendError('sendfile', errno);
  }
}

/** Sends buf[0, len) on socket `fd` without waiting; returns bytes sent or WOULD_BLOCK. */
export function sendNow(fd: number, buf: Uint8Array, len: number): number {
  for (;;) {
    const n = fns!.send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) return n;
    const errno = lastErrno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return WOULD_BLOCK;
    throw new SendError('send', errno);
  }
}

/** Bytes queued in the socket that the peer has not consumed yet (SIOCOUTQ); -1 if unknown. */
export function unsentBytes(fd: number): number {
  return fns!.ioctl(fd, SIOCOUTQ, intBox) === 0 ? intBox[0]! : -1;
}

/** True when `fd` is in non-blocking mode (libuv sets it on the sockets it runs). */
export function isNonBlocking(fd: number): boolean {
  const flags = fns!.fcntl(fd, F_GETFL, 0);
  return flags >= 0 && (flags & O_NONBLOCK) !== 0;
}
