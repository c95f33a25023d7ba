// lseek with SEEK_DATA / SEEK_HOLE: Node has no binding for them, and they are how a sparse
// local file tells us where its holes are without reading them.
import { lastErrno, loadLibc } from './libc.js';

const SEEK_END = 2;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
const EINVAL = 22;

type LseekFn = (fd: number, offset: number, whence: number) => number;
let lseekFn: LseekFn | undefined;

function lseek(): LseekFn {
  lseekFn ??= loadLibc().func('int64_t lseek(int fd, int64_t offset, int whence)') as LseekFn;
  return lseekFn;
}

export class SeekError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: errno ${errno}`);
  }
}

/** Next offset >= `offset` that holds data, or undefined when only a hole remains up to EOF (ENXIO). */
export function seekData(fd: number, offset: number): number | undefined {
  const r = lseek()(fd, offset, SEEK_DATA);
  if (r >= 0) return r;
  const errno = lastErrno();
  if (errno === ENXIO) return undefined;
  throw new SeekError(errno, 'lseek SEEK_DATA');
}

/** Next offset >= `offset` that starts a hole (EOF counts as a hole); undefined past EOF. */
export function seekHole(fd: number, offset: number): number | undefined {
  const r = lseek()(fd, offset, SEEK_HOLE);
  if (r >= 0) return r;
  const errno = lastErrno();
  if (errno === ENXIO) return undefined;
  throw new SeekError(errno, 'lseek SEEK_HOLE');
}

/** Size of whatever the fd refers to (works for block devices, where fstat says 0). */
export function seekEnd(fd: number): number {
  const r = lseek()(fd, 0, SEEK_END);
  if (r >= 0) return r;
  throw new SeekError(lastErrno(), 'lseek SEEK_END');
}

/** True when the filesystem does not support SEEK_DATA (callers then treat everything as data). */
export function isSeekUnsupported(err: unknown): boolean {
  return err instanceof SeekError && err.errno === EINVAL;
}

