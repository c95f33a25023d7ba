// A set of byte ranges, kept sorted and merged: the parts of a copy that are done (checkpoint
// journal), and their complement, the parts a resumed copy still has to do.

/** [start, end) pairs, sorted, not overlapping, not touching. */
export type RangeList = Array<[number, number]>;

export class DoneRanges {
  private list: RangeList = [];
  /** Bytes in all ranges. */
  bytes = 0;

  constructor(ranges: RangeList = []) {
    for (const [s, e] of ranges) this.add(s, e - s);
  }

  /** Adds [offset, offset+length); overlaps with what is there are counted once. */
  add(offset: number, length: number): void {
    if (length <= 0) return;
    let start = offset;
    let end = offset + length;
    const l = this.list;
    // Every range that overlaps or touches [start, end) joins it.
    const i = this.firstEndingAtOrAfter(start);
    let j = i;
    while (j < l.length && l[j]![0] <= end) {
      start = Math.min(start, l[j]![0]);
      end = Math.max(end, l[j]![1]);
      this.bytes -= l[j]![1] - l[j]![0];
      j++;
    }
    l.splice(i, j - i, [start, end]);
    this.bytes += end - start;
  }

  /** Index of the first range whose end is >= at (binary search). */
  private firstEndingAtOrAfter(at: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]![1] < at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** True when [offset, offset+length) is entirely inside one range. */
  has(offset: number, length: number): boolean {
    const r = this.list[this.firstEndingAtOrAfter(offset + length)];
    return r !== undefined && r[0] <= offset && r[1] >= offset + length;
  }

  /** A copy of the ranges. */
  ranges(): RangeList {
    return this.list.map(([s, e]) => [s, e]);
  }

  /** The parts of [offset, offset+length) not in the set, in order. */
  missing(offset: number, length: number): RangeList {
    const out: RangeList = [];
    const end = offset + length;
    let at = offset;
    for (let i = this.firstEndingAtOrAfter(offset); i < this.list.length && at < end; i++) {
      const [s, e] = this.list[i]!;
      if (s >= end) break;
      if (s > at) out.push([at, s]);
      at = Math.max(at, e);
    }
    if (at < end) out.push([at, end]);
    return out;
  }
}
