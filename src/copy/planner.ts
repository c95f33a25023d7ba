// Turns the source's extents into work items for one connection. The disk is handed out in
// big contiguous slices (locality per connection, balance across connections); inside a
// slice, extents are asked for in large windows, and one fetch is shared by all the lanes.
import type { Endpoint, SourceExtent } from './endpoint.js';

/** One unit of work; lanes own one each and the planner overwrites it (no per-item garbage). */
export interface WorkItem {
  offset: number;
  length: number;
  zero: boolean;
}

/** Hands out [start, end) slices of the disk in order, to whichever connection asks first. */
export class SliceDealer {
  private next = 0;
  constructor(private readonly size: number, readonly sliceSize: number) {}

  take(): { start: number; end: number } | undefined {
    if (this.next >= this.size) return undefined;
    const start = this.next;
    this.next = Math.min(this.size, start + this.sliceSize);
    return { start, end: this.next };
  }
}

export interface PlannerLimits {
  /** Largest data request (already aligned to the endpoints' minimum block size). */
  requestSize: number;
  /** Largest zero request. */
  zeroSize: number;
  /** Bytes of extents asked for in one call. */
  extentWindow: number;
  useExtents: boolean;
}

export class ConnectionPlanner {
  private extents: SourceExtent[] = [];
  private index = 0;
  /** Next byte to hand out. */
  private pos = 0;
  private sliceEnd = 0;
  private fetching: Promise<void> | undefined;
  stopped = false;

  constructor(
    private readonly source: Endpoint,
    private readonly conn: number,
    private readonly dealer: SliceDealer,
    private readonly limits: PlannerLimits,
  ) {}

  /** Fills `item` with the next piece of work; false when there is none left (or stopped). */
  async next(item: WorkItem): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      if (this.index < this.extents.length) {
        const e = this.extents[this.index]!;
        const extentEnd = e.offset + e.length;
        const length = Math.min(extentEnd - this.pos, e.zero ? this.limits.zeroSize : this.limits.requestSize);
        item.offset = this.pos;
        item.length = length;
        item.zero = e.zero;
        this.pos += length;
        if (this.pos >= extentEnd) this.index++;
        return true;
      }
      if (this.fetching !== undefined) {
        await this.fetching;
        continue;
      }
      if (this.pos >= this.sliceEnd) {
        const slice = this.dealer.take();
        if (slice === undefined) return false;
        this.pos = slice.start;
        this.sliceEnd = slice.end;
      }
      this.fetching = this.fetch().finally(() => {
        this.fetching = undefined;
      });
    }
  }

  private async fetch(): Promise<void> {
    const start = this.pos;
    const end = this.sliceEnd;
    if (!this.limits.useExtents) {
      this.setExtents([{ offset: start, length: end - start, zero: false }]);
      return;
    }
    const got = await this.source.extents(start, Math.min(end - start, this.limits.extentWindow), this.conn);
    // Keep only what lies in [start, end), in order and contiguous; a server that answers
    // nothing useful makes us treat the window as data rather than loop forever.
    const clean: SourceExtent[] = [];
    let at = start;
    for (const e of got) {
      if (e.offset !== at || e.length <= 0) break;
      const length = Math.min(e.length, end - at);
      const last = clean[clean.length - 1];
      if (last !== undefined && last.zero === e.zero) last.length += length;
      else clean.push({ offset: at, length, zero: e.zero });
      at += length;
      if (at >= end) break;
    }
    if (clean.length === 0) clean.push({ offset: start, length: Math.min(end - start, this.limits.extentWindow), zero: false });
    this.setExtents(clean);
  }

  private setExtents(extents: SourceExtent[]): void {
    this.extents = extents;
    this.index = 0;
  }
}
