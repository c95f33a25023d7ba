// The state a terminal progress bar draws (src/cli/progress-tracker.ts): updates land at once,
// the rate only on the twice-a-second tick, and the last measurement keeps a rate it has.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { trackProgress } from '../src/cli/progress-tracker.js';

describe('trackProgress', () => {
  let clock = 0;
  const now = (): number => clock;
  /** Moves both the injected clock and the timers. */
  const advance = (ms: number): void => {
    clock += ms;
    vi.advanceTimersByTime(ms);
  };

  beforeEach(() => {
    clock = 0;
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('measures the rate on the tick, not on each update', () => {
    const p = trackProgress(4000, now);
    advance(250);
    p.update(1000);
    expect(p.state).toEqual({ done: 1000, total: 4000, rate: 0 });
    advance(250);
    // 1000 bytes in the half second since the start.
    expect(p.state.rate).toBe(2000);
    p.update(1500);
    advance(500);
    expect(p.state.rate).toBe(1500);
    p.stop();
  });

  it('finish sets a known total done; an unknown one stays as updated', () => {
    const known = trackProgress(4000, now);
    known.update(10);
    known.finish();
    expect(known.state.done).toBe(4000);
    const unknown = trackProgress(undefined, now);
    unknown.update(10);
    unknown.finish();
    expect(unknown.state.done).toBe(10);
    known.stop();
    unknown.stop();
  });

  it('stop ends the tick; measureNow keeps the rate when the sample tells none', () => {
    const p = trackProgress(4000, now);
    p.update(1000);
    advance(500);
    p.stop();
    p.update(3000);
    advance(500);
    // No tick after stop.
    expect(p.state.rate).toBe(2000);
    p.measureNow();
    expect(p.state.rate).toBe(3000);
    // A sample at the same moment measures nothing: the last rate stands.
    p.measureNow();
    expect(p.state.rate).toBe(3000);
  });
});
