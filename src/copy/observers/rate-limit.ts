// --rate: holds data reads back so the bytes read from the source stay under a cap. Only
// reads ask for room (holes and zero extents are never read, so they pass freely), and the
// copier never learns why a read waited: the limit is one observer among others.
import type { CopyObserver } from '../observer.js';

/** Time and timers, injectable so the arithmetic can be tested without waiting. */
export interface RateClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; the returned function cancels it. */
  setTimer(fn: () => void, ms: number): () => void;
}

export const realClock: RateClock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/**
 * Largest request that keeps any one second within 25% of the cap: reads start n/rate
 * seconds apart, so a window of one second can hold one request more than the rate allows.
 * A power of two (request sizes are), never below `floor`.
 */
export function requestSizeForRate(bytesPerSecond: number, floor = 512): number {
  let n = floor;
  while (n * 2 <= bytesPerSecond / 4) n *= 2;
  return n;
}

/**
 * A token bucket without a reserve: each read of n bytes takes the next n/rate seconds of the
 * link, starting no earlier than now. Time left unused (a hole, a slow server) is not saved
 * up for later, so no burst ever follows a quiet spell; and while reads keep coming, they
 * start exactly n/rate apart, so the long-run average is the cap.
 */
export class RateLimiter {
  /** When the next read may start (RateClock milliseconds). */
  private next = -Infinity;
  private readonly waiting = new Set<{ resolve: () => void; cancel: () => void }>();
  private released = false;
  /** Bytes that had to wait, and for how long in all (for -v and the summary). */
  heldReads = 0;
  heldMs = 0;

  constructor(readonly bytesPerSecond: number, private readonly clock: RateClock = realClock) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`rate must be a positive number of bytes per second, got ${bytesPerSecond}`);
    }
  }

  /** Undefined when `bytes` may be read now; otherwise a promise that settles when they may. */
  take(bytes: number): Promise<void> | undefined {
    if (this.released) return undefined;
    const now = this.clock.now();
    const start = Math.max(now, this.next);
    this.next = start + (bytes * 1000) / this.bytesPerSecond;
    const delay = start - now;
    if (delay <= 0) return undefined;
    this.heldReads++;
    this.heldMs += delay;
    return new Promise<void>((resolve) => {
      const entry = {
        resolve: () => {
          this.waiting.delete(entry);
          resolve();
        },
        cancel: () => {},
      };
      entry.cancel = this.clock.setTimer(entry.resolve, delay);
      this.waiting.add(entry);
    });
  }

  /** The copy is stopping: every read waiting goes now, and no later one waits. */
  release(): void {
    this.released = true;
    for (const w of [...this.waiting]) {
      w.cancel();
      w.resolve();
    }
  }
}

/**
 * The observer for a copy: each data read waits for its share of `bytesPerSecond`; when the
 * copy fails, waiting reads are let go at once so the drain is quick.
 */
export function rateLimit(bytesPerSecond: number, clock: RateClock = realClock): CopyObserver & { limiter: RateLimiter } {
  const limiter = new RateLimiter(bytesPerSecond, clock);
  return {
    limiter,
    beforeRead: (_offset, length) => limiter.take(length),
    failed: () => limiter.release(),
  };
}
