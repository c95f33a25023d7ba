#!/usr/bin/env node
// nbdcopy --rate on a real copy (issue 17): pattern SIZE -> null: with --rate=RATE and
// --progress-json, each event stamped as it arrives. Prints the average (from the done event)
// and every interval's rate, and checks them against the bounds: the average within 5%
// of the cap, no second more than 25% above it, over at least 10 s. Exit 1 if a bound is
// missed. Needs `npm run build` first.
// Usage: node bench/rate-limit.mjs [--size 640M] [--rate 50M] [--runs 1]
import { spawn } from 'node:child_process';
import { OUR_NBDCOPY as ours, failInOneLine, optionReader, runsOption, startPatternSource } from './lib/pattern-source.mjs';
import { parseSize } from './lib/sizes.mjs';
import { AVERAGE_TOLERANCE, rateFigures, SECOND_TOLERANCE } from './lib/rate-check.mjs';

failInOneLine('bench/rate-limit');
const option = optionReader(process.argv.slice(2));
const size = option('--size', '640M');
const rate = option('--rate', '50M');
const cap = parseSize(rate);
const runs = runsOption(option, '1');

const { uri, children } = await startPatternSource('rate-', size);

/** One copy: the progress events stamped on arrival, and the done event. */
function rated() {
  return new Promise((resolve, reject) => {
    const child = spawn(ours, [`--rate=${rate}`, '--progress-json=1', uri, 'null:'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const samples = [{ t: performance.now(), bytes: 0 }];
    let done;
    let partial = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      const t = performance.now();
      const lines = (partial + text).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        const e = JSON.parse(line);
        if (e.event === 'progress') samples.push({ t, bytes: e.bytes });
        else if (e.event === 'done') done = e;
      }
    });
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0 || done === undefined) reject(new Error(`nbdcopy exited with ${code}`));
      else resolve({ samples, done });
    });
  });
}

const MiB = 1 << 20;
let failed = 0;
for (let run = 1; run <= runs; run++) {
  const { samples, done } = await rated();
  const f = rateFigures(samples, done, cap);
  if (!f.ok) failed++;
  console.log(`run ${run}: ${size} at --rate=${rate} (${(cap / MiB).toFixed(1)} MiB/s): ${done.seconds.toFixed(2)} s, `
    + `average ${(f.average / MiB).toFixed(2)} MiB/s (${(f.averageOff * 100).toFixed(2)}%, bound ±${AVERAGE_TOLERANCE * 100}%), `
    + `worst second ${(f.worst / MiB).toFixed(2)} MiB/s (${(f.worstOver * 100).toFixed(1)}% over, bound ${SECOND_TOLERANCE * 100}%): ${f.ok ? 'ok' : 'MISSED'}`);
  console.log(`  per second (MiB/s): ${f.perSecond.map((r) => (r / MiB).toFixed(1)).join(' ')}`);
}
process.exitCode = failed > 0 ? 1 : 0;
