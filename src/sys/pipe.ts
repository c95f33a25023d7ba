// Non-blocking I/O on pipes and sockets we did not open (stdin, stdout), on the calling thread.
// Node's fs.read / fs.write always go through the thread pool, and on this kind of VM each
// hand-off (futex wake, pool thread, completion through the event loop) costs more CPU than
// the copy itself. preadv2 / pwritev2 with offset -1 (the file position, like read/write)
// and RWF_NOWAIT move what fits right now and return EAGAIN instead of waiting, whatever
// O_NONBLOCK says: we must not flip that flag on a descriptor shared with other processes.
// When they would block, the caller falls back to the thread pool, so the event loop never
// stalls on a slow reader or writer.
import { koffi, lastErrno, loadLibc } from './libc.js';

const RWF_NOWAIT = 8;
const EINVAL = 22;
const ENOSYS = 38;
const EOPNOTSUPP = 95;
const F_GETPIPE_SZ = 1032;
const F_SETPIPE_SZ = 1031;

/** Nothing can move without waiting: use a blocking (thread-pool) call. */
export const WOULD_BLOCK = -1;
/** This descriptor (a tty, an old kernel...) cannot do it: stop trying. */
export const UNSUPPORTED = -2;

interface IoVec {
  base: Uint8Array;
  len: number;
}

type RwFn = (fd: number, iov: IoVec[], count: number, offset: number, flags: number) => number;
type FcntlFn = (fd: number, cmd: number, arg: number) => number;

let fns: { preadv2: RwFn; pwritev2: RwFn; fcntl: FcntlFn } | null | undefined;

function load(): typeof fns {
  if (fns !== undefined) return fns;
  try {
    koffi.struct('nbd_stream_iovec', { base: 'void *', len: 'size_t' });
    const libc = loadLibc();
    fns = {
      preadv2: libc.func('intptr_t preadv2(int fd, const nbd_stream_iovec *iov, int iovcnt, int64_t offset, int flags)') as RwFn,
      pwritev2: libc.func('intptr_t pwritev2(int fd, const nbd_stream_iovec *iov, int iovcnt, int64_t offset, int flags)') as RwFn,
      fcntl: libc.func('int fcntl(int fd, int cmd, int arg)') as FcntlFn,
    };
  } catch {
    fns = null;
  }
  return fns;
}

/** One reusable iovec array: no allocation per call beyond the view. */
const iov: IoVec[] = [{ base: new Uint8Array(0), len: 0 }];

function result(n: number): number {
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === EOPNOTSUPP || errno === ENOSYS || errno === EINVAL) return UNSUPPORTED;
  // EAGAIN, and real errors too: the blocking call that follows reports those properly.
  return WOULD_BLOCK;
}

/**
 * Reads into buf[off, off+len) what the descriptor holds now. Returns the bytes read (0 = end
 * of file), WOULD_BLOCK when nothing is there yet, UNSUPPORTED when this fd cannot do it.
 */
export function readNow(fd: number, buf: Uint8Array, off: number, len: number): number {
  const f = load();
  if (f == null) return UNSUPPORTED;
  const slot = iov[0]!;
  slot.base = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
  slot.len = len;
  return result(f.preadv2(fd, iov, 1, -1, RWF_NOWAIT));
}

/**
 * Writes from buf[off, off+len) what fits now. Returns the bytes written (possibly short),
 * WOULD_BLOCK when nothing fits, UNSUPPORTED when this fd cannot do it.
 */
export function writeNow(fd: number, buf: Uint8Array, off: number, len: number): number {
  const f = load();
  if (f == null) return UNSUPPORTED;
  const slot = iov[0]!;
  slot.base = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
  slot.len = len;
  const n = f.pwritev2(fd, iov, 1, -1, RWF_NOWAIT);
  return n === 0 && len > 0 ? WOULD_BLOCK : result(n);
}

/**
 * Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ) when fd is a pipe with a smaller one.
 * Returns the pipe's buffer size afterwards, or undefined when fd is not a pipe (or the call
 * is unavailable). A refusal (EPERM above the user's limit) leaves the pipe as it was.
 */
export function growPipe(fd: number, bytes: number): number | undefined {
  const f = load();
  if (f == null) return undefined;
  const now = f.fcntl(fd, F_GETPIPE_SZ, 0);
  if (now < 0) return undefined;
  if (now >= bytes) return now;
  const got = f.fcntl(fd, F_SETPIPE_SZ, bytes);
  return got < 0 ? now : got;
}

