#!/usr/bin/env node
// What the integrity features cost (issue 16), in one run with alternating rows:
//   pattern SIZE -> null: plain, with --blkhash (sha256, 64 KiB blocks), and the hashing
//   floor: `sha256sum` (and `openssl dgst -sha256`, which uses the CPU's SHA instructions)
//   of the same SIZE bytes from a file in the page cache;
//   pattern SIZE -> a new local file plain and with --checkpoint.
// Prints every run, the medians and the ratios the issue names. Needs `npm run build` first.
// Usage: node bench/integrity.mjs [--size 4G] [--runs 3] [--rows hash,checkpoint]
import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runMeasured } from './lib/measure.mjs';
import { OUR_NBDCOPY as ours, failInOneLine, optionReader, runsOption, startPatternSource } from './lib/pattern-source.mjs';
import { median } from './lib/stats.mjs';

failInOneLine('bench/integrity');
const option = optionReader(process.argv.slice(2));
const size = option('--size', '4G');
const runs = runsOption(option, '3');
const groups = option('--rows', 'hash,checkpoint').split(',');

const { dir, uri } = await startPatternSource('integrity-', size);

const image = join(dir, 'image.raw');
const out = join(dir, 'out.img');
const checkpoint = join(dir, 'copy.ckpt');
const bytes = () => statSync(image).size;

/** Rows of one group, run alternately: [name, argv, before each run]. */
const rows = [];
if (groups.includes('hash')) {
  // The same bytes as a file, read once so that the hashing rows read from the page cache.
  const made = spawnSync(ours, [uri, image], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('could not write the image file');
  spawnSync('sh', ['-c', `cat '${image}' > /dev/null`]);
  rows.push(
    ['copy to null:', [ours, uri, 'null:']],
    ['copy to null: --blkhash', [ours, '--blkhash', uri, 'null:']],
    ['sha256sum (file in page cache)', ['sha256sum', image]],
    ['openssl dgst -sha256 (file in page cache)', ['openssl', 'dgst', '-sha256', image]],
  );
}
if (groups.includes('checkpoint')) {
  const fresh = () => rmSync(out, { force: true });
  rows.push(
    ['copy to a new file', [ours, uri, out], fresh],
    ['copy to a new file --checkpoint', [ours, `--checkpoint=${checkpoint}`, uri, out], fresh],
  );
}

const results = new Map(rows.map(([name]) => [name, []]));
const cpus = new Map(rows.map(([name]) => [name, []]));
for (let run = 0; run <= runs; run++) {
  for (const [name, command, before] of rows) {
    before?.();
    // A file row's writeback must not land in the next row's time.
    spawnSync('sync');
    const r = await runMeasured({ argv: command, tmpDir: dir, timeoutMs: 600_000 });
    if (!r.ok) throw new Error(`${name}: ${r.error ?? `exit ${r.exitCode}`}`);
    const cpu = r.userMs === null ? '' : `  cpu ${((r.userMs + r.sysMs) / 1000).toFixed(2)} s`;
    process.stdout.write(`${run === 0 ? 'warm-up' : `run ${run}`}  ${name.padEnd(42)} ${(r.wallMs / 1000).toFixed(2)} s${cpu}\n`);
    if (run > 0) results.get(name).push(r.wallMs);
    if (run > 0 && r.userMs !== null) cpus.get(name).push(r.userMs + r.sysMs);
  }
}
rmSync(out, { force: true });

const med = (name) => median(results.get(name) ?? []);
process.stdout.write(`\n${size}, ${runs} runs, medians:\n`);
for (const [name] of rows) {
  const cpu = median(cpus.get(name));
  process.stdout.write(`  ${name.padEnd(42)} ${(med(name) / 1000).toFixed(2)} s${cpu === null ? '' : `  cpu ${(cpu / 1000).toFixed(2)} s`}\n`);
}
if (groups.includes('hash')) {
  const hashed = med('copy to null: --blkhash');
  process.stdout.write(`  --blkhash / sha256sum floor: ${(hashed / med('sha256sum (file in page cache)')).toFixed(2)}x`
    + `   --blkhash / openssl floor: ${(hashed / med('openssl dgst -sha256 (file in page cache)')).toFixed(2)}x`
    + `   --blkhash / plain copy: ${(hashed / med('copy to null:')).toFixed(2)}x   (${bytes()} bytes)\n`);
}
if (groups.includes('checkpoint')) {
  const change = (med('copy to a new file --checkpoint') / med('copy to a new file') - 1) * 100;
  process.stdout.write(`  --checkpoint costs ${change.toFixed(1)}% on the dense copy to a file\n`);
}
