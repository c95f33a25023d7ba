#!/usr/bin/env node
// libnbd's nbdcopy reading `pattern SIZE` into null: from our server and from nbdkit, alternating
// runs so both see the same machine load; prints each run, the medians and the ratio
// ours/nbdkit. Both servers are started by nbdcopy itself with socket activation ([ CMD ]).
// Needs `npx tsc -p tsconfig.json` first (bin/nbdserve loads dist/).
// Usage: node bench/experiments/server-read.mjs [size=4G] [runs=3] [extra nbdcopy args...]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const size = process.argv[2] ?? '4G';
const runs = Number(process.argv[3] ?? 3);
const extra = process.argv.slice(4);

const servers = {
  ours: [join(repo, 'bin', 'nbdserve'), 'pattern', size],
  nbdkit: ['nbdkit', 'pattern', size],
};

function once(cmd) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/nbdcopy', [...extra, '--', '[', ...cmd, ']', 'null:'], { stdio: ['ignore', 'inherit', 'inherit'] });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`nbdcopy from ${cmd.join(' ')} failed with status ${r.status}`);
  return secs;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const times = { ours: [], nbdkit: [] };
for (let i = 0; i < runs; i++) {
  for (const name of i % 2 ? ['nbdkit', 'ours'] : ['ours', 'nbdkit']) {
    const t = once(servers[name]);
    times[name].push(t);
    console.log(`run ${i + 1} ${name.padEnd(6)} ${t.toFixed(3)} s`);
  }
}
const ours = median(times.ours);
const theirs = median(times.nbdkit);
console.log(`nbdcopy ${extra.join(' ')} [ server pattern ${size} ] null:  median ours ${ours.toFixed(3)} s, nbdkit ${theirs.toFixed(3)} s, ratio ${(ours / theirs).toFixed(2)}`);
