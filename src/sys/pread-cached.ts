// preadv2(RWF_NOWAIT): read only what is already in the page cache, on the calling thread.
// Node's fs.read always goes through the thread pool, and on this kind of VM each hand-off
// (futex wake, pool thread, completion back through the event loop) costs more CPU than
// copying 256 KiB from the page cache. With RWF_NOWAIT the kernel never waits for the disk:
// it returns what is cached (possibly short) or EAGAIN, and the caller reads the rest with
// an ordinary asynchronous read, so a cold file never blocks the event loop.
import { koffi, lastErrno, loadLibc } from './libc.js';

const RWF_NOWAIT = 8;
const EAGAIN = 11;

interface IoVec {
  base: Uint8Array;
  len: number;
}

type PreadFn = (fd: number, iov: IoVec[], count: number, offset: number, flags: number) => number;

let preadv2: PreadFn | null | undefined;

function load(): PreadFn | null {
  if (preadv2 !== undefined) return preadv2;
  try {
    // koffi turns each { base, len } into a struct iovec that points at the Buffer's memory.
    koffi.struct('nbd_iovec', { base: 'void *', len: 'size_t' });
    preadv2 = loadLibc().func('intptr_t preadv2(int fd, const nbd_iovec *iov, int iovcnt, int64_t offset, int flags)') as PreadFn;
  } catch {
    preadv2 = null;
  }
  return preadv2;
}

/**
 * Copies into `buf` whatever of [offset, offset + buf.length) the page cache holds from the
 * start of the range, without blocking on the disk. Returns the bytes read (0 when nothing
 * was cached or at end of file), or -1 when this kernel or filesystem cannot do it at all
 * (the caller should stop trying). Other errors return 0: the ordinary read reports them.
 */
export function preadCached(fd: number, buf: Uint8Array, offset: number): number {
  const fn = load();
  if (fn === null) return -1;
  const n = fn(fd, [{ base: buf, len: buf.length }], 1, offset, RWF_NOWAIT);
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === EAGAIN) return 0;
  // EOPNOTSUPP (filesystems without non-blocking reads), ENOSYS, EINVAL (old kernels).
  return errno === 95 || errno === 38 || errno === 22 ? -1 : 0;
}
