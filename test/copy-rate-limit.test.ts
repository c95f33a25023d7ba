// The --rate limiter's arithmetic on a fake clock: lanes of reads with random latencies run
// for 10 simulated seconds; the bytes read must average within 5% of the cap and no window
// of one second may go above 125% of it. Holes (work that never asks for room) are free.
import { describe, expect, it } from 'vitest';
import { RateLimiter, requestSizeForRate, type RateClock } from '../src/copy/observers/rate-limit.js';
import { rng } from './helpers/random.js';

/** A clock whose timers fire only when the test runs them, in time order. */
class FakeClock implements RateClock {
  time = 0;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private ids = 0;

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): () => void {
    const id = this.ids++;
    this.timers.push({ at: this.time + Math.max(0, ms), fn, id });
    return () => {
      this.timers = this.timers.filter((t) => t.id !== id);
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, ms));
  }

  /** Runs timers in order until `until` ms, letting promise continuations run after each. */
  async runUntil(until: number): Promise<void> {
    await flush();
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const t = this.timers[0];
      if (t === undefined || t.at > until) break;
      this.timers.shift();
      this.time = t.at;
      t.fn();
      await flush();
    }
    this.time = until;
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Simulation {
  rate: number;
  requestSize: number;
  lanes: number;
  /** Fraction of work items that are holes (never read). */
  holes: number;
  maxLatencyMs: number;
  seed: number;
}

/** Completed reads as (time ms, bytes), and the bytes of holes passed, over 10 simulated s. */
async function simulate(s: Simulation): Promise<{ reads: Array<[number, number]>; holeBytes: number }> {
  const clock = new FakeClock();
  const limiter = new RateLimiter(s.rate, clock);
  const random = rng(s.seed);
  const reads: Array<[number, number]> = [];
  let holeBytes = 0;
  const end = 10_000;
  const lane = async () => {
    while (clock.now() < end) {
      if (random() < s.holes) {
        holeBytes += s.requestSize;
        await clock.sleep(2);
        continue;
      }
      const wait = limiter.take(s.requestSize);
      if (wait !== undefined) await wait;
      await clock.sleep(random() * s.maxLatencyMs);
      reads.push([clock.now(), s.requestSize]);
    }
  };
  const lanes = Array.from({ length: s.lanes }, lane);
  await clock.runUntil(end);
  limiter.release();
  await clock.runUntil(end + s.maxLatencyMs + 1);
  await Promise.all(lanes);
  return { reads: reads.filter(([t]) => t <= end), holeBytes };
}

/** Largest number of bytes completed in any window of one second (windows start every 10 ms). */
function busiestSecond(reads: Array<[number, number]>, end: number): number {
  let most = 0;
  for (let from = 0; from + 1000 <= end; from += 10) {
    let sum = 0;
    for (const [t, n] of reads) if (t >= from && t < from + 1000) sum += n;
    most = Math.max(most, sum);
  }
  return most;
}

const MiB = 1 << 20;

describe('RateLimiter', () => {
  const cases: Simulation[] = [
    { rate: 4 * MiB, requestSize: 256 * 1024, lanes: 64, holes: 0, maxLatencyMs: 20, seed: 1 },
    { rate: 100 * MiB, requestSize: 256 * 1024, lanes: 256, holes: 0, maxLatencyMs: 5, seed: 2 },
    // Requests of a quarter of the rate: the most a second can hold is 5 of them (125%).
    { rate: 1 * MiB, requestSize: requestSizeForRate(MiB), lanes: 16, holes: 0, maxLatencyMs: 30, seed: 3 },
    { rate: 10 * MiB, requestSize: 1 * MiB / 4, lanes: 8, holes: 0.5, maxLatencyMs: 2, seed: 4 },
    // Fewer lanes than the rate needs at this latency: the cap is never reached, never passed.
    { rate: 50 * MiB, requestSize: 64 * 1024, lanes: 2, holes: 0, maxLatencyMs: 10, seed: 5 },
  ];
  for (const c of cases) {
    it(`rate ${c.rate} B/s, requests of ${c.requestSize}, ${c.lanes} lanes, ${c.holes * 100}% holes`, async () => {
      const { reads, holeBytes } = await simulate(c);
      const total = reads.reduce((sum, [, n]) => sum + n, 0);
      const average = total / 10;
      const reachable = (c.lanes * c.requestSize * 1000) / (c.maxLatencyMs / 2);
      if (reachable > 2 * c.rate) {
        expect(Math.abs(average - c.rate) / c.rate).toBeLessThan(0.05);
      } else {
        expect(average).toBeLessThan(c.rate * 1.05);
      }
      expect(busiestSecond(reads, 10_000)).toBeLessThanOrEqual(c.rate * 1.25);
      // Holes took none of the budget: data alone reached the cap, and holes came on top.
      if (c.holes > 0) expect((total + holeBytes) / 10).toBeGreaterThan(c.rate * 1.5);
    });
  }

  it('time left unused is not saved up: after a pause, reads are spaced again at once', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(1000, clock);
    expect(limiter.take(100)).toBeUndefined();
    clock.time = 60_000;
    expect(limiter.take(100)).toBeUndefined();
    // The second read after the pause waits its 100 ms like any other.
    expect(limiter.take(100)).toBeInstanceOf(Promise);
    expect(limiter.heldReads).toBe(1);
    expect(limiter.heldMs).toBe(100);
  });

  it('release() lets every waiting read go at once, and later ones do not wait', async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(1000, clock);
    limiter.take(1000);
    const waits = [limiter.take(1000), limiter.take(1000)];
    let settled = 0;
    for (const w of waits) void w!.then(() => settled++);
    await flush();
    expect(settled).toBe(0);
    limiter.release();
    await flush();
    expect(settled).toBe(2);
    expect(limiter.take(1000)).toBeUndefined();
  });

  it('refuses a rate that is not a positive number', () => {
    expect(() => new RateLimiter(0)).toThrow(RangeError);
    expect(() => new RateLimiter(-5)).toThrow(RangeError);
    expect(() => new RateLimiter(Number.NaN)).toThrow(RangeError);
  });

  it('requestSizeForRate: a power of two of at most a quarter of the rate, never below 512', () => {
    expect(requestSizeForRate(MiB)).toBe(256 * 1024);
    expect(requestSizeForRate(100 * MiB)).toBe(16 * MiB);
    expect(requestSizeForRate(1000)).toBe(512);
    expect(requestSizeForRate(3 * MiB)).toBe(512 * 1024);
  });
});
