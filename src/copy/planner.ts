// Turns the source's extents into work items for one connection. The disk is handed out in
// big contiguous claims (locality per connection, balance across connections); inside a
// claim, extents are asked for in large windows, and one fetch is shared by all the lanes.
// Items never cross a slice boundary, and zero items only cover whole blocks.
import type { Endpoint } from './endpoint.js';
import { alignExtents } from './align-extents.js';
import type { RangeSource } from './range-source.js';
import { restrictExtents, widenToBlocks, type PlannedExtent } from './restrict-extents.js';

/** One unit of work; lanes own one each and the planner overwrites it (no per-item garbage). */
export interface WorkItem {
  offset: number;
  length: number;
  zero: boolean;
}

/** Hands out [start, end) claims of the disk in order, to whichever connection asks first. */
export class ClaimDealer {
  private next = 0;
  constructor(private readonly size: number, readonly claimSize: number) {}

  take(): { start: number; end: number } | undefined {
    if (this.next >= this.size) return undefined;
    const start = this.next;
    this.next = Math.min(this.size, start + this.claimSize);
    return { start, end: this.next };
  }
}

export interface PlannerLimits {
  /** Largest data request (already aligned to the endpoints' minimum block size). */
  requestSize: number;
  /** No item crosses a multiple of this; it is also the largest zero item. */
  sliceSize: number;
  /** Zero items start and end on multiples of this (or at the end of the source). */
  blockSize: number;
  /** Bytes of extents asked for in one call. */
  extentWindow: number;
  useExtents: boolean;
  /** Only these ranges are copied; the rest of the destination is left as it is. */
  ranges?: RangeSource;
  /** Source size (the last block may be short). */
  sourceSize: number;
}

export class ConnectionPlanner {
  private batch: PlannedExtent[] = [];
  private index = 0;
  /** Next byte to hand out (inside batch[index]). */
  private pos = 0;
  /** The next batch of extents, asked for while the current one is being copied. */
  private ahead: Promise<PlannedExtent[] | undefined> | undefined;
  /** Claimed but not yet fetched part of this connection's current claim. */
  private fetchPos = 0;
  private fetchEnd = 0;
  private finished = false;
  stopped = false;

  constructor(
    private readonly source: Endpoint,
    private readonly conn: number,
    private readonly dealer: ClaimDealer,
    private readonly limits: PlannerLimits,
  ) {}

  /** Fills `item` with the next piece of work; false when there is none left (or stopped). */
  async next(item: WorkItem): Promise<boolean> {
    for (;;) {
      if (this.stopped || this.finished) return false;
      if (this.index < this.batch.length) {
        const e = this.batch[this.index]!;
        const extentEnd = e.offset + e.length;
        if (e.skip === true) {
          this.pos = extentEnd;
          this.index++;
          continue;
        }
        const { sliceSize, requestSize } = this.limits;
        const sliceEnd = this.pos - (this.pos % sliceSize) + sliceSize;
        let length = Math.min(extentEnd, sliceEnd) - this.pos;
        if (!e.zero && length > requestSize) length = requestSize;
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

  private startFetch(): Promise<PlannedExtent[] | undefined> {
    const p = this.fetchNext();
    // If the copy stops before anyone awaits it, its failure must not go unhandled.
    p.catch(() => undefined);
    this.ahead = p;
    return p;
  }

  private async fetchNext(): Promise<PlannedExtent[] | undefined> {
    if (this.fetchPos >= this.fetchEnd) {
      const slice = this.dealer.take();
      if (slice === undefined) return undefined;
      this.fetchPos = slice.start;
      this.fetchEnd = slice.end;
    }
    const start = this.fetchPos;
    let end = Math.min(this.fetchEnd, start + this.limits.extentWindow);
    const { ranges, blockSize, sourceSize } = this.limits;
    let wanted;
    if (ranges !== undefined) {
      wanted = widenToBlocks(await ranges.ranges(start, end - start, this.conn), blockSize, sourceSize);
      // Nothing to do up to the first wanted range: step over it without asking for extents.
      const first = wanted[0]?.[0] ?? end;
      if (first > start) {
        this.fetchPos = Math.min(first, end);
        return [{ offset: start, length: this.fetchPos - start, zero: false, skip: true }];
      }
      end = Math.min(end, wanted[wanted.length - 1]![1]);
    }
    let clean: PlannedExtent[];
    if (!this.limits.useExtents) {
      clean = [{ offset: start, length: end - start, zero: false }];
    } else {
      const got = await this.source.extents(start, end - start, this.conn);
      clean = alignExtents(got, start, end, blockSize);
    }
    const last = clean[clean.length - 1]!;
    this.fetchPos = last.offset + last.length;
    return wanted === undefined ? clean : restrictExtents(clean, wanted);
  }
}
