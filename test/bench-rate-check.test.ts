// The rate-limit bench's verdict (bench/lib/rate-check.mjs): the average from the done event,
// the rate of each interval between progress events, and issue 17's bounds.
import { describe, expect, it } from 'vitest';
import { rateFigures } from '../bench/lib/rate-check.mjs';

const MiB = 1 << 20;
const cap = 50 * MiB;
/** Progress events a second apart, `rates` bytes per second each. */
const samples = (rates: number[]) => {
  const out = [{ t: 0, bytes: 0 }];
  for (const r of rates) out.push({ t: out.at(-1)!.t + 1000, bytes: out.at(-1)!.bytes + r });
  return out;
};

describe('rateFigures', () => {
  it('a copy at the cap for 12 s passes; the per-second rates are the intervals', () => {
    const f = rateFigures(samples(Array(12).fill(cap)), { bytes: 12 * cap, seconds: 12.2 }, cap);
    expect(f.perSecond).toEqual(Array(12).fill(cap));
    expect(f.averageOff).toBeCloseTo(12 / 12.2 - 1, 6);
    expect(f.ok).toBe(true);
  });

  it('an average 6% under the cap fails', () => {
    expect(rateFigures(samples(Array(12).fill(cap)), { bytes: 12 * cap, seconds: 12 / 0.94 }, cap).ok).toBe(false);
  });

  it('one second 26% over fails even with a good average', () => {
    const rates = [...Array(11).fill(cap), 1.26 * cap];
    const f = rateFigures(samples(rates), { bytes: 12 * cap, seconds: 12 }, cap);
    expect(f.worstOver).toBeCloseTo(0.26, 6);
    expect(f.ok).toBe(false);
  });

  it('a copy shorter than 10 s proves nothing: not ok', () => {
    expect(rateFigures(samples(Array(5).fill(cap)), { bytes: 5 * cap, seconds: 5 }, cap).ok).toBe(false);
  });
});
