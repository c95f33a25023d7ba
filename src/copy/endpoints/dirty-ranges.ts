// Written ranges of a file destination that may still sit in the page cache, oldest first,
// with neighbours merged. Writes arrive as a few runs of sequential requests (one run per
// connection slice), completing a little out of order, so a write usually extends one of the
// newest ranges. Merged, the page-cache bookkeeping costs one writeback kick per few hundred
// KiB and one wait-and-drop per few MiB instead of one of each per request.

/** How many of the newest ranges a write may extend (requests in flight reorder completions). */
const MERGE_CANDIDATES = 32;
/** Fields per range in the flat array: offset, length, bytes not yet sent to writeback. */
const STRIDE = 3;

export class DirtyRanges {
  private ranges: number[] = [];
  private head = 0;
  /** Bytes in all ranges. */
  bytes = 0;
  /** Set by add() when the range it grew has `kickSize` bytes not yet sent to writeback. */
  kickOffset = 0;
  kickLength = 0;
  /** Set by takeOldest(). */
  takenOffset = 0;
  takenLength = 0;

  /**
   * @param chunk a range stops growing at this length, so the oldest one is never huge.
   * @param kickSize add() asks for writeback once a range has this many new bytes.
   */
  constructor(private readonly chunk: number, private readonly kickSize: number) {}

  /** Records a write; true when [kickOffset, kickOffset + kickLength) should go to writeback now. */
  add(offset: number, length: number): boolean {
    this.bytes += length;
    const r = this.ranges;
    const stop = Math.max(this.head, r.length - STRIDE * MERGE_CANDIDATES);
    for (let i = r.length - STRIDE; i >= stop; i -= STRIDE) {
      const start = r[i]!;
      const len = r[i + 1]!;
      if (len >= this.chunk) continue;
      if (start + len === offset) {
        r[i + 1] = len + length;
      } else if (offset + length === start) {
        r[i] = offset;
        r[i + 1] = len + length;
      } else {
        continue;
      }
      return this.grown(i, length);
    }
    r.push(offset, length, 0);
    return this.grown(r.length - STRIDE, length);
  }

  private grown(i: number, length: number): boolean {
    const r = this.ranges;
    const unkicked = r[i + 2]! + length;
    if (unkicked < this.kickSize) {
      r[i + 2] = unkicked;
      return false;
    }
    r[i + 2] = 0;
    // The whole range: the kernel skips pages already under writeback.
    this.kickOffset = r[i]!;
    this.kickLength = r[i + 1]!;
    return true;
  }

  /** True when there is a range to take. */
  get pending(): boolean {
    return this.head < this.ranges.length;
  }

  /** Removes the oldest range; its bounds are in `takenOffset` / `takenLength` afterwards. */
  takeOldest(): void {
    this.takenOffset = this.ranges[this.head]!;
    this.takenLength = this.ranges[this.head + 1]!;
    this.head += STRIDE;
    this.bytes -= this.takenLength;
    if (this.head >= 3072) {
      this.ranges = this.ranges.slice(this.head);
      this.head = 0;
    }
  }
}
