// A source of unknown length (stdin, a FIFO) into any destination. The stream is read strictly
// in order, one buffer at a time; the writes of what was read run behind, up to the plan's
// lanes at once, so the next read overlaps the destination's round trips (an NBD server, the
// thread pool for files). A sequential destination gets lanes = 1: one write at a time, still
// overlapping the read of the next buffer.
import type { CopyRun } from '../copy-run.js';
import { NbdError } from '../../protocol/errors.js';

/** Counts writes in flight; the reader waits for a free one. */
class InFlight {
  count = 0;
  private waiter: (() => void) | undefined;

  /** Resolves once fewer than `limit` writes are in flight. */
  async below(limit: number): Promise<void> {
    while (this.count >= limit) await new Promise<void>((resolve) => (this.waiter = resolve));
  }

  done(): void {
    this.count--;
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/** Copies until end of stream; returns the bytes copied. Throws the first error, after draining. */
export async function copyFromStream(run: CopyRun): Promise<number> {
  const { source, destination, pool, plan } = run;
  const writes = new InFlight();
  const limit = Math.max(1, plan.lanesPerConnection);
  let offset = 0;
  try {
    for (;;) {
      // The next read overlaps the writes in flight (even the single write a stream allows),
      // except with --synchronous: one request at a time, read or write.
      if (run.options.synchronous) await writes.below(1);
      if (run.error !== undefined) break;
      const wait = run.observers.beforeRead(offset, pool.bufferSize);
      if (wait !== undefined) {
        await wait;
        if (run.error !== undefined) break;
      }
      const buffer = pool.take();
      const n = await source.read(buffer, offset, 0);
      if (n === 0 || run.error !== undefined) {
        pool.give(buffer);
        break;
      }
      if (destination.size !== undefined && offset + n > destination.size) {
        pool.give(buffer);
        throw new NbdError('ENOSPC',
          `${destination.name}: source is larger than the destination (${destination.size} bytes)`);
      }
      await writes.below(limit);
      if (run.error !== undefined) {
        pool.give(buffer);
        break;
      }
      const view = n === buffer.length ? buffer : buffer.subarray(0, n);
      run.observers.data(offset, view);
      writes.count++;
      void writeBehind(run, buffer, view, offset, writes);
      offset += n;
      if (n < buffer.length) break;
    }
  } catch (err) {
    run.fail(err);
  }
  await writes.below(1);
  if (run.error === undefined) await destination.setFinalSize?.(offset);
  return offset;
}

/** One write of `view` (the start of `buffer`); the buffer goes back to the pool once sent or done. */
async function writeBehind(run: CopyRun, buffer: Buffer, view: Buffer, offset: number, writes: InFlight): Promise<void> {
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    run.pool.give(buffer);
  };
  try {
    await run.writeData(view, offset, 0, run.releaseEarly ? release : undefined);
    run.completed(offset, view.length);
  } catch (err) {
    run.fail(err);
  } finally {
    release();
    writes.done();
  }
}
