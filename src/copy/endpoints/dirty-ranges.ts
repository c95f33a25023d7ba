// Written ranges of a file destination that may still sit in the page cache, oldest first,
// with neighbours merged. Writes arrive as a few runs of sequential requests (one run per
// connection slice), completing a little out of order, so a write usually extends one of the
// newest ranges. Merged, the page-cache bookkeeping costs one writeback kick per few hundred
// KiB and one wait-and-drop per few MiB instead of one of each per request.

/** How many of the newest ranges a write may extend: up to 4 connections x 64 requests in
 * flight, each connection on its own part of the disk, complete out of order. */
const MERGE_CANDIDATES = 128;
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
      // Empty entries are ranges merged into another one.
      if (len === 0 || len >= this.chunk) continue;
      if (start + len === offset) {
        r[i + 1] = len + length;
      } else if (offset + length === start) {
        r[i] = offset;
        r[i + 1] = len + length;
      } else {
        continue;
      }
      return this.grown(this.bridge(i, stop), length);
    }
    r.push(offset, length, 0);
    return this.grown(r.length - STRIDE, length);
  }

  /**
   * A write that arrived late fills the gap between two ranges: join them into the older
   * entry (it is taken first) so the split does not outlive the reordering. Returns the
   * index of the joined range.
   */
  private bridge(i: number, stop: number): number {
    const r = this.ranges;
    const start = r[i]!;
    const end = start + r[i + 1]!;
    for (let j = r.length - STRIDE; j >= stop; j -= STRIDE) {
      const len = r[j + 1]!;
      if (j === i || len === 0 || len >= this.chunk) continue;
      const s = r[j]!;
      if (s !== end && s + len !== start) continue;
      const keep = Math.min(i, j);
      const drop = Math.max(i, j);
      r[keep] = Math.min(start, s);
      r[keep + 1] = r[i + 1]! + len;
      r[keep + 2] = r[i + 2]! + r[j + 2]!;
      r[drop + 1] = 0;
      r[drop + 2] = 0;
      return keep;
    }
    return i;
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
    return this.bytes > 0;
  }

  /** Removes the oldest range; its bounds are in `takenOffset` / `takenLength` afterwards. */
  takeOldest(): void {
    const r = this.ranges;
    while (this.head < r.length && r[this.head + 1] === 0) this.head += STRIDE;
    this.takenOffset = r[this.head]!;
    this.takenLength = r[this.head + 1]!;
    this.head += STRIDE;
    this.bytes -= this.takenLength;
    if (this.head >= 3072) {
      this.ranges = r.slice(this.head);
      this.head = 0;
    }
  }
}
