// The fuzz targets (test/fuzz/targets/) on a short budget: FUZZ_RUNS cases or FUZZ_SECONDS per
// target, whichever ends first (300 cases / 1.5 s by default). `npm run fuzz` runs the same
// targets for 1,000,000 cases each. A failure prints the shrunk input and the seed and path
// that replay it: FUZZ_SEED=... FUZZ_PATH=... FUZZ_TARGET='name' npx vitest run test/fuzz.test.ts
import { describe, expect, it } from 'vitest';
import { runTarget } from './fuzz/harness.js';
import { TARGETS } from './fuzz/targets.js';

const only = process.env.FUZZ_TARGET;
const longRun = process.env.FUZZ_RUNS !== undefined && Number(process.env.FUZZ_RUNS) > 100_000;

describe('fuzz targets', () => {
  for (const target of TARGETS) {
    it.skipIf(only !== undefined && !target.name.includes(only))(target.name, async () => {
      const r = await runTarget(target);
      const rate = r.runs / (r.ms / 1000);
      console.log(`fuzz: ${r.name}: ${r.runs} cases in ${(r.ms / 1000).toFixed(1)} s (${rate.toFixed(0)}/s)${r.failed ? ' FAILED' : ''}`);
      if (r.failed) console.log(r.message);
      expect(r.failed, r.message).toBe(false);
    }, longRun ? 24 * 3600_000 : 60_000);
  }
});
