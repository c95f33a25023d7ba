// Read-only memory maps of files: looking at a file's bytes without copying them out of the
// page cache (zero detection for data the kernel then sends with sendfile).
import { koffi, loadLibc } from './libc.js';

const PROT_READ = 1;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

const MADV_DONTNEED = 4;
const PAGE = 4096;

interface MmapCalls {
  mmap: (addr: null, length: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, length: number) => number;
  madvise: (addr: bigint, length: number, advice: number) => number;
}

let calls: MmapCalls | undefined;

function load(): MmapCalls {
  const libc = loadLibc();
  calls ??= {
    mmap: libc.func('void *mmap(void *, size_t, int, int, int, int64_t)') as MmapCalls['mmap'],
    munmap: libc.func('int munmap(void *, size_t)') as MmapCalls['munmap'],
    madvise: libc.func('int madvise(uintptr_t, size_t, int)') as MmapCalls['madvise'],
  };
  return calls;
}

export interface FileMap {
  /** The file's bytes [offset, offset+length). Touching them after unmap() crashes the process. */
  readonly bytes: Buffer;
  /**
   * Unmaps the whole pages inside bytes [at, at+length) from this process (they stay in the
   * page cache; touching them again maps them again). Touched pages of a map count in the
   * process's RSS, so a copy that looked at every page of a big file would otherwise seem
   * to hold all of it.
   */
  drop(at: number, length: number): void;
  unmap(): void;
}

/** Map offsets must be multiples of the page size; this one is a multiple of every Linux one. */
const PAGE_ALIGN = 64 * 1024;

/**
 * Maps `length` bytes of `fd` from `offset` read-only, or returns undefined when the kernel refuses (an
 * empty file, a descriptor that cannot be mapped). Caution: if the file shrinks while mapped,
 * touching the lost part raises SIGBUS, which no JavaScript can catch.
 */
export function mapFile(fd: number, offset: number, length: number): FileMap | undefined {
  if (length <= 0 || offset % PAGE_ALIGN !== 0) return undefined;
  const c = load();
  const address = c.mmap(null, length, PROT_READ, MAP_SHARED, fd, offset);
  if (address === null || koffi.address(address) === MAP_FAILED) return undefined;
  const bytes = Buffer.from(koffi.view(address, length));
  const base = BigInt(koffi.address(address) as bigint);
  let mapped = true;
  return {
    bytes,
    drop(at, dropLength) {
      // The map starts on a page boundary; round inwards to whole pages.
      const start = Math.ceil(at / PAGE) * PAGE;
      const end = Math.floor((at + dropLength) / PAGE) * PAGE;
      if (mapped && end > start) c.madvise(base + BigInt(start), end - start, MADV_DONTNEED);
    },
    unmap() {
      if (!mapped) return;
      mapped = false;
      c.munmap(address, length);
    },
  };
}
