// fallocate(2): punch holes and allocate ranges in local files. Node exposes neither.
import { lastErrno, loadLibc } from './libc.js';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

const EOPNOTSUPP = 95;
const ENOSYS = 38;

type FallocateFn = (fd: number, mode: number, offset: number, length: number) => number;
let fallocateFn: FallocateFn | undefined;

function fallocateCall(): FallocateFn {
  fallocateFn ??= loadLibc().func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as FallocateFn;
  return fallocateFn;
}

export class FallocateError extends Error {
  constructor(readonly errno: number, readonly mode: number) {
    super(`fallocate mode ${mode}: errno ${errno}`);
  }
  /** The filesystem cannot do this mode; the caller should fall back to writing zeroes. */
  get unsupported(): boolean {
    return this.errno === EOPNOTSUPP || this.errno === ENOSYS;
  }
}

export function fallocate(fd: number, mode: number, offset: number, length: number): void {
  if (fallocateCall()(fd, mode, offset, length) !== 0) throw new FallocateError(lastErrno(), mode);
}

/** Deallocate a range; it reads back as zeroes and the file size does not change. */
export function punchHole(fd: number, offset: number, length: number): void {
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Zero a range and keep it allocated (ext4/xfs do this without writing data). */
export function zeroRange(fd: number, offset: number, length: number): void {
  fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
}

/** Allocate blocks for a range that is already known to read as zeroes (mode 0). */
export function allocateRange(fd: number, offset: number, length: number): void {
  fallocate(fd, 0, offset, length);
}
