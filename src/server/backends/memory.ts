// A RAM disk that only pays for what was written: the disk is a map of 16 KiB pages, a page
// exists once a nonzero byte was written in it, and a trim or zero that leaves a page all
// zeroes frees it again. Pages that do not exist read as zeroes and report as hole+zero.
import { STATE_HOLE, STATE_ZERO } from '../../protocol/constants.js';
import type { Backend, Extent, ZeroOptions } from './types.js';

/**
 * Clients write and trim in blocks of 4 KiB (our preferred block size); a page much larger
 * than that keeps the zeroes around a small write or trim in memory, and a smaller one costs
 * a Buffer (some 400 bytes) per page. 16 KiB: under 3 % on a full disk.
 */
const PAGE_SHIFT = 14;
const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Ranges up to this many pages look pages up one by one instead of walking them in order. */
const SHORT_PAGES = 256;
const SHORT_RANGE = SHORT_PAGES * PAGE_SIZE;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

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
        // Zeroes written where nothing is stored change nothing (nbdcopy writes holes this way).
        if (isZero(data, done, done + n)) {
          done += n;
          continue;
        }
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
    const firstPage = Math.floor(offset / PAGE_SIZE);
    const lastPage = Math.floor((end - 1) / PAGE_SIZE);
    let changed = false;
    if (lastPage - firstPage < SHORT_PAGES) {
      // A short range: look its pages up, without sorting every page after each write.
      for (let pageNo = firstPage; pageNo <= lastPage; pageNo++) changed = this.discardIn(pageNo, offset, end) || changed;
    } else {
      // Visit only allocated pages in the range: a 1 TiB trim of an almost empty disk is cheap.
      const sorted = this.pagesInOrder();
      for (let i = lowerBound(sorted, firstPage); i < sorted.length; i++) {
        const pageNo = sorted[i]!;
        if (pageNo > lastPage) break;
        changed = this.discardIn(pageNo, offset, end) || changed;
      }
    }
    if (changed) this.sortedPages = undefined;
  }

  /** Zeroes [offset, end) within one page; frees the page when nothing but zeroes is left. */
  private discardIn(pageNo: number, offset: number, end: number): boolean {
    const page = this.pages.get(pageNo);
    if (!page) return false;
    const pageStart = pageNo * PAGE_SIZE;
    const from = Math.max(offset, pageStart) - pageStart;
    const to = Math.min(end, pageStart + PAGE_SIZE) - pageStart;
    if ((from === 0 && to === PAGE_SIZE) || (page.fill(0, from, to), page.equals(ZERO_PAGE))) {
      this.pages.delete(pageNo);
      return true;
    }
    return false;
  }

  private pagesInOrder(): number[] {
    this.sortedPages ??= [...this.pages.keys()].sort((a, b) => a - b);
    return this.sortedPages;
  }
}

function isZero(data: Buffer, from: number, to: number): boolean {
  return data.subarray(from, to).equals(ZERO_PAGE.subarray(0, to - from));
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
