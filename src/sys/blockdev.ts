// Block device size: fstat reports 0 for block devices, so ask the kernel (BLKGETSIZE64).
import { lastErrno, loadLibc } from './libc.js';
import { seekEnd } from './seek.js';

/** _IOR(0x12, 114, size_t) on 64-bit Linux. */
const BLKGETSIZE64 = 0x80081272;

type IoctlU64Fn = (fd: number, request: number, out: number[]) => number;
let ioctlFn: IoctlU64Fn | undefined;

function ioctlU64(): IoctlU64Fn {
  // ioctl is variadic; on x86-64/arm64 calling it with a fixed third pointer argument is ABI-safe.
  ioctlFn ??= loadLibc().func('int ioctl(int fd, unsigned long request, _Out_ uint64_t *value)') as IoctlU64Fn;
  return ioctlFn;
}

/** Size in bytes of the block device open on `fd`; falls back to lseek(SEEK_END). */
export function blockDeviceSize(fd: number): number {
  const out = [0];
  if (ioctlU64()(fd, BLKGETSIZE64, out) === 0) return Number(out[0]);
  void lastErrno();
  return seekEnd(fd);
}
