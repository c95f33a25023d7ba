#!/usr/bin/env node
// The write side of nbdcopy, ours vs libnbd's, alternating runs (A B A B ...), medians.
// Each run gets a fresh nbdkit destination on a private Unix socket, so nbdkit's memory
// plugin never starts a run already populated. Needs `npx tsc -p tsconfig.json` first.
//
// Cases:  file-memory  1 GiB random file -> nbdkit memory 2G
//         file-null    1 GiB random file -> nbdkit null 2G (isolates our client from nbdkit)
//         nbd-memory   nbdkit file (the random file) -> nbdkit memory 2G
//         holes-null   nbdkit memory 64G (all holes) -> null:
// Also prints the client's CPU seconds (user+sys, medians), which the machine's noise blurs less.
// Usage: node bench/write-path.mjs [--runs N] [--case NAME[,NAME]] [--size 1G] [--keep-data]
//        [--ours DIR]   (race DIR/bin/nbdcopy, e.g. a snapshot build, instead of this checkout)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv0 = process.argv.slice(2);
const oursDir = argv0.includes('--ours') ? argv0[argv0.indexOf('--ours') + 1] : repo;
const OURS = join(oursDir, 'bin', 'nbdcopy');
const THEIRS = '/usr/bin/nbdcopy';

const argv = process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
}
const runs = Number(opt('--runs', '5'));
const cases = opt('--case', 'file-memory,file-null,nbd-memory,holes-null').split(',');
const sizeMiB = Number(String(opt('--size', '1G')).replace(/G$/i, '')) * 1024;
const keepData = argv.includes('--keep-data');
const dataFile = join(process.env.BENCH_TMPDIR ?? tmpdir(), `write-path-random-${sizeMiB}M.bin`);

function makeDataFile() {
  if (existsSync(dataFile) && statSync(dataFile).size === sizeMiB * 2 ** 20) return;
  const fd = openSync(dataFile, 'w');
  const chunk = Buffer.allocUnsafe(2 ** 20);
  for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(chunk));
  closeSync(fd);
}

async function startNbdkit(dir, args) {
  const sock = join(dir, `s${Math.random().toString(36).slice(2)}`);
  const child = spawn('nbdkit', ['-f', '-U', sock, ...args], { stdio: 'inherit' });
  while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 5));
  return {
    uri: `nbd+unix:///?socket=${sock}`,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
    },
  };
}

/** Servers and nbdcopy arguments of one case; servers are started fresh per run. */
const CASES = {
  'file-memory': { servers: [['memory', '2G']], args: ([d]) => [dataFile, d] },
  'file-null': { servers: [['null', '2G']], args: ([d]) => [dataFile, d] },
  'nbd-memory': { servers: [['file', dataFile], ['memory', '2G']], args: ([s, d]) => [s, d] },
  'holes-null': { servers: [['memory', '64G']], args: ([s]) => [s, 'null:'] },
};

async function timeOne(dir, tool, c) {
  const servers = [];
  for (const s of c.servers) servers.push(await startNbdkit(dir, s));
  try {
    const timeFile = join(dir, 'time');
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, tool, ...c.args(servers.map((s) => s.uri))],
      { stdio: ['ignore', 'inherit', 'inherit'] });
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`${tool} failed (${r.status})`);
    const [u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
    return { wall: t, cpu: u + s };
  } finally {
    for (const s of servers) await s.stop();
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const dir = mkdtempSync(join(tmpdir(), 'bench-write-'));
try {
  if (cases.some((n) => n.startsWith('file') || n.startsWith('nbd'))) makeDataFile();
  console.log(`case          ours(s)  libnbd(s)  ratio | cpu ours  libnbd  ratio   (${runs} runs each, alternating; medians)`);
  for (const name of cases) {
    const c = CASES[name];
    if (!c) throw new Error(`unknown case ${name}`);
    const ours = [];
    const theirs = [];
    for (let i = 0; i < runs; i++) {
      ours.push(await timeOne(dir, OURS, c));
      theirs.push(await timeOne(dir, THEIRS, c));
    }
    const a = median(ours.map((x) => x.wall));
    const b = median(theirs.map((x) => x.wall));
    const ca = median(ours.map((x) => x.cpu));
    const cb = median(theirs.map((x) => x.cpu));
    const f = (x) => x.toFixed(3);
    console.log(`${name.padEnd(12)}  ${f(a).padStart(7)}  ${f(b).padStart(9)}  ${(a / b).toFixed(2).padStart(5)} |` +
      ` ${f(ca).padStart(8)}  ${f(cb).padStart(6)}  ${(ca / cb).toFixed(2).padStart(5)}` +
      `   walls: ours [${ours.map((x) => x.wall.toFixed(2)).join(' ')}] libnbd [${theirs.map((x) => x.wall.toFixed(2)).join(' ')}]`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  if (!keepData) rmSync(dataFile, { force: true });
}
