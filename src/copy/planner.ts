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
  private batch: SourceExtent[] = [];
  private index = 0;
  /** Next byte to hand out (inside batch[index]). */
  private pos = 0;
  /** The next batch of extents, asked for while the current one is being copied. */
  private ahead: Promise<SourceExtent[] | undefined> | undefined;
  /** Claimed but not yet fetched part of this connection's current slice. */
  private fetchPos = 0;
  private fetchEnd = 0;
  private finished = false;
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
      if (this.stopped || this.finished) return false;
      if (this.index < this.batch.length) {
        const e = this.batch[this.index]!;
        const extentEnd = e.offset + e.length;
        const length = Math.min(extentEnd - this.pos, e.zero ? this.limits.zeroSize : this.limits.requestSize);
        item.offset = this.pos;
        item.length = length;
        item.zero = e.zero;
        this.pos += length;
        if (this.pos >= extentEnd) this.index++;
        return true;
      }
      const pending = this.ahead ?? this.startFetch();
      const got = await pending;
      // Every lane that waited wakes up here; only the first installs the batch.
      if (this.ahead !== pending) continue;
      this.ahead = undefined;
      if (got === undefined) {
        this.finished = true;
        return false;
      }
      this.batch = got;
      this.index = 0;
      this.pos = got[0]!.offset;
      // Double buffering: the next extents travel while this batch is copied.
      this.startFetch();
    }
  }

  private startFetch(): Promise<SourceExtent[] | undefined> {
    const p = this.fetchNext();
    // If the copy stops before anyone awaits it, its failure must not go unhandled.
    p.catch(() => undefined);
    this.ahead = p;
    return p;
  }

  private async fetchNext(): Promise<SourceExtent[] | undefined> {
    if (this.fetchPos >= this.fetchEnd) {
      const slice = this.dealer.take();
      if (slice === undefined) return undefined;
      this.fetchPos = slice.start;
      this.fetchEnd = slice.end;
    }
    const start = this.fetchPos;
    const end = Math.min(this.fetchEnd, start + this.limits.extentWindow);
    if (!this.limits.useExtents) {
      this.fetchPos = end;
      return [{ offset: start, length: end - start, zero: false }];
    }
    const got = await this.source.extents(start, end - start, this.conn);
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
    if (clean.length === 0) {
      clean.push({ offset: start, length: end - start, zero: false });
      at = end;
    }
    this.fetchPos = at;
    return clean;
  }
}
