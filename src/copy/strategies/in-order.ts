// A random-access source (NBD, file) into a sequential destination (stdout, a FIFO): many
// reads in flight, spread over the source's connections, and their data written strictly in
// source order. The read of request k+depth travels while request k is being written, so the
// server's latency hides behind the pipe instead of adding to it request by request.
import type { CopyRun } from '../copy-run.js';
import type { ConnectionPlanner, WorkItem } from '../planner.js';
import { NbdError } from '../../protocol/errors.js';

/** One request of the ring: its place in the stream and, once read, its bytes. */
class Slot implements WorkItem {
  offset = 0;
  length = 0;
  zero = false;
  /** The pooled buffer holding the data (taken when the data arrives). */
  buffer: Buffer | undefined;
  view: Buffer | undefined;
  /** Settles when the read is over; never rejects (a failure goes to run.fail). */
  reading: Promise<void> | undefined;
  /** The read is over (the writer did not have to wait for it). */
  ready = false;
  /** Built once per slot, so a read costs no new closure. */
  readonly take: () => Buffer;

  constructor(private readonly run: CopyRun) {
    this.take = () => {
      const b = this.run.pool.take();
      this.buffer = b;
      return this.length === b.length ? b : b.subarray(0, this.length);
    };
  }

  async read(conn: number): Promise<void> {
    const { source, pool } = this.run;
    try {
      const wait = this.run.observers.beforeRead(this.offset, this.length);
      if (wait !== undefined) {
        await wait;
        if (this.run.error !== undefined) throw this.run.error;
      }
      if (source.readTake !== undefined) {
        this.view = await source.readTake(this.offset, this.length, conn, this.take);
      } else {
        const view = this.take();
        this.view = view;
        const n = await source.read(view, this.offset, conn);
        if (n < this.length) throw new NbdError('EIO', `${source.name}: unexpected end of data at offset ${this.offset + n}`);
      }
    } catch (err) {
      this.run.fail(err);
      if (this.buffer !== undefined) pool.give(this.buffer);
      this.buffer = undefined;
      this.view = undefined;
    }
    this.ready = true;
  }

  /** Gives the buffer back to the pool (after its write, or when the copy stops). */
  release(): void {
    if (this.buffer !== undefined) this.run.pool.give(this.buffer);
    this.buffer = undefined;
    this.view = undefined;
    this.reading = undefined;
    this.ready = false;
  }
}

/**
 * Reads in flight at the start. Each one the writer has to wait for adds one more, up to
 * MAX_READ_AHEAD and --requests x connections: a slow or distant server gets a deep queue, while a fast
 * server behind a slower pipe keeps a few buffers cycling in the CPU cache instead of a full
 * queue of read-ahead data going cold.
 */
const INITIAL_READ_AHEAD = 16;
/**
 * Reads are issued in groups of this many, on one connection: requests issued in one tick
 * leave in one socket write, so the server is woken once per group, not once per request.
 */
const READ_BATCH = 8;
/**
 * Bytes of reads the window may grow to (32 requests of 256 KiB): throughput is bytes in flight
 * over latency, 8 MiB covers 1 GB/s at 8 ms. Growing to the whole queue (-R x connections,
 * 128 requests) costs more CPU for no speed.
 */
const MAX_READ_AHEAD = 8 * 1024 * 1024;

export async function copyInOrder(
  run: CopyRun, planner: ConnectionPlanner, connections: number, depth: number, requestSize: number,
): Promise<void> {
  let window = Math.min(INITIAL_READ_AHEAD, depth);
  const batch = Math.min(READ_BATCH, window);
  const cap = Math.min(depth, Math.max(window, Math.floor(MAX_READ_AHEAD / requestSize)));
  const ring: Slot[] = [];
  for (let i = 0; i < cap; i++) ring.push(new Slot(run));
  let head = 0;
  let tail = 0;
  let more = true;
  let most = window;
  try {
    for (;;) {
      // Top the window up with reads ahead of the writer, a whole group at a time.
      if (head === tail || window - (tail - head) >= batch) {
        while (more && tail - head < window && run.error === undefined) {
          const slot = ring[tail % cap]!;
          if (!(await planner.next(slot))) {
            more = false;
            break;
          }
          if (!slot.zero) slot.reading = slot.read(Math.floor(tail / batch) % connections);
          tail++;
        }
      }
      if (head === tail || run.error !== undefined) break;
      const slot = ring[head % cap]!;
      if (slot.reading !== undefined && !slot.ready) {
        // The writer caught up with the reads: read further ahead from now on.
        if (window < cap) window++;
        if (window > most) most = window;
        await slot.reading;
      }
      if (run.error !== undefined) break;
      if (slot.zero) {
        await run.zeroRange(slot.offset, slot.length, 0);
      } else {
        run.observers.data(slot.offset, slot.view!);
        await run.writeData(slot.view!, slot.offset, 0);
      }
      run.completed(slot.offset, slot.length);
      slot.release();
      head++;
    }
  } catch (err) {
    run.fail(err);
  } finally {
    run.options.log?.(`in-order copy: up to ${most} reads in flight`);
    // Drain: every read still in flight must settle before its buffer can be forgotten.
    for (let i = head; i < tail; i++) {
      const slot = ring[i % cap]!;
      if (slot.reading !== undefined) await slot.reading;
      slot.release();
    }
  }
}
