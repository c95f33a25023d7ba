// A RAM disk that only pays for what was written: the disk is a map of 64 KiB pages, a page
// exists once a byte in it was written, and trimming or zeroing a whole page frees it again.
// Pages that do not exist read as zeroes and report as hole+zero.
import { STATE_HOLE, STATE_ZERO } from '../../protocol/constants.js';
import type { Backend, Extent, ZeroOptions } from './types.js';

const PAGE_SHIFT = 16;
const PAGE_SIZE = 1 << PAGE_SHIFT;
const SHORT_RANGE = 64 * PAGE_SIZE;

export class MemoryBackend implements Backend {
  readonly kind = 'memory';
  readonly writable = true;
  readonly canTrim = true;
  readonly canZero = true;
  readonly canFastZero = true;
  readonly canFlush = true;
  readonly canCache = true;
  readonly multiConn = true;
  readonly sparse = true;

  private readonly pages = new Map<number, Buffer>();
  /** Page numbers in order, rebuilt lazily for block status after the page set changed. */
  private sortedPages: number[] | undefined;

  constructor(readonly size: number) {}

  /** Bytes of page memory in use (tests check that holes stay free). */
  get allocatedBytes(): number {
    return this.pages.size * PAGE_SIZE;
  }

  read(into: Buffer, offset: number): void {
    let done = 0;
    const length = into.length;
    while (done < length) {
      const pos = offset + done;
      const pageNo = Math.floor(pos / PAGE_SIZE);
      const inPage = pos - pageNo * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      const page = this.pages.get(pageNo);
      if (page) page.copy(into, done, inPage, inPage + n);
      else into.fill(0, done, done + n);
      done += n;
    }
  }

  write(data: Buffer, offset: number): void {
    let done = 0;
    const length = data.length;
    while (done < length) {
      const pos = offset + done;
      const pageNo = Math.floor(pos / PAGE_SIZE);
      const inPage = pos - pageNo * PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - inPage, length - done);
      let page = this.pages.get(pageNo);
      if (!page) {
        page = Buffer.alloc(PAGE_SIZE);
        this.pages.set(pageNo, page);
        this.sortedPages = undefined;
      }
      data.copy(page, inPage, done, done + n);
      done += n;
    }
  }

  zero(offset: number, length: number, _options: ZeroOptions): void {
    // Freeing a page keeps it reading as zeroes, so NO_HOLE makes no difference to the data.
    this.discard(offset, length);
  }

  trim(offset: number, length: number): void {
    this.discard(offset, length);
  }

  flush(): void {}
  cache(): void {}
  close(): void {
    this.pages.clear();
    this.sortedPages = undefined;
  }

  extents(offset: number, length: number): Extent[] {
    const end = offset + length;
    const out: Extent[] = [];
    // Short ranges (every structured read asks) look pages up directly: no sorting after writes.
    if (length <= SHORT_RANGE) {
      for (let pos = offset; pos < end;) {
        const pageNo = Math.floor(pos / PAGE_SIZE);
        const to = Math.min(end, (pageNo + 1) * PAGE_SIZE);
        push(out, to - pos, this.pages.has(pageNo) ? 0 : STATE_HOLE | STATE_ZERO);
        pos = to;
      }
      return out;
    }
    const sorted = this.pagesInOrder();
    let pos = offset;
    // First allocated page at or after the page holding `pos`.
    let i = lowerBound(sorted, Math.floor(pos / PAGE_SIZE));
    while (pos < end && out.length < 4096) {
      const pageNo = Math.floor(pos / PAGE_SIZE);
      if (i < sorted.length && sorted[i] === pageNo) {
        // A run of consecutive allocated pages is one data extent.
        let last = pageNo;
        while (i + 1 < sorted.length && sorted[i + 1] === last + 1) { i++; last++; }
        i++;
        const runEnd = Math.min(end, (last + 1) * PAGE_SIZE);
        push(out, runEnd - pos, 0);
        pos = runEnd;
      } else {
        const nextData = i < sorted.length ? sorted[i]! * PAGE_SIZE : end;
        const runEnd = Math.min(end, nextData);
        push(out, runEnd - pos, STATE_HOLE | STATE_ZERO);
        pos = runEnd;
      }
    }
    return out;
  }

  private discard(offset: number, length: number): void {
    if (this.pages.size === 0 || length === 0) return;
    const end = offset + length;
    // Visit only allocated pages in the range: a 1 TiB trim of an almost empty disk is cheap.
    const sorted = this.pagesInOrder();
    const lastPage = Math.floor((end - 1) / PAGE_SIZE);
    let changed = false;
    for (let i = lowerBound(sorted, Math.floor(offset / PAGE_SIZE)); i < sorted.length; i++) {
      const pageNo = sorted[i]!;
      if (pageNo > lastPage) break;
      const pageStart = pageNo * PAGE_SIZE;
      const from = Math.max(offset, pageStart) - pageStart;
      const to = Math.min(end, pageStart + PAGE_SIZE) - pageStart;
      if (from === 0 && to === PAGE_SIZE) {
        this.pages.delete(pageNo);
        changed = true;
      } else {
        this.pages.get(pageNo)?.fill(0, from, to);
      }
    }
    if (changed) this.sortedPages = undefined;
  }

  private pagesInOrder(): number[] {
    this.sortedPages ??= [...this.pages.keys()].sort((a, b) => a - b);
    return this.sortedPages;
  }
}

function lowerBound(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function push(out: Extent[], length: number, flags: number): void {
  const last = out[out.length - 1];
  if (last && last.flags === flags) last.length += length;
  else out.push({ length, flags });
}
