#!/usr/bin/env node
// TLS copy throughput: our bin/nbdcopy beside libnbd's /usr/bin/nbdcopy, in the same run,
// against nbdkit --tls=require --tls-psk (TLS-PSK, as both sides negotiate it by default).
// A plaintext row of the same copy shows what TLS itself costs each tool.
//
//   npm run build && node bench/experiments/tls-copy.mjs [--size 1G] [--runs 3] [--only TEXT] [--json FILE]
//   (--only keeps the scenarios whose name contains TEXT)
//
// Runs alternate between the tools (ours, libnbd, ours, ...) after one unmeasured warm-up
// each, so drift on a shared machine hits both alike. Reported: median wall time, MB/s,
// median CPU (user+sys, from GNU time when present) and ours ÷ libnbd (< 1: we are faster).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMeasured } from '../lib/measure.mjs';
import { installSignalHandlers, onCleanup, spawnTracked, stopChild } from '../lib/processes.mjs';
import { median } from '../lib/stats.mjs';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OURS = join(repo, 'bin', 'nbdcopy');
const LIBNBD = '/usr/bin/nbdcopy';

function parseArgs(argv) {
  const opts = { size: '1G', runs: 3, json: null, only: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) fail(`${a} needs a value`);
      return v;
    };
    if (a === '--size') opts.size = value();
    else if (a === '--runs') opts.runs = Number(value());
    else if (a === '--json') opts.json = value();
    else if (a === '--only') opts.only = value();
    else if (a === '--help' || a === '-h') {
      console.log('usage: node bench/experiments/tls-copy.mjs [--size 1G] [--runs N] [--only TEXT] [--json FILE]');
      process.exit(0);
    } else fail(`unknown option ${a}`);
  }
  if (!Number.isInteger(opts.runs) || opts.runs < 1) fail('--runs must be a positive integer');
  return opts;
}

function fail(message) {
  process.stderr.write(`tls-copy: ${message}\n`);
  process.exit(1);
}

function bytesOf(size) {
  const m = /^(\d+)([KMGT]?)$/i.exec(size);
  if (!m) fail(`bad --size ${size}`);
  return Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase());
}

async function startNbdkit(tmp, name, args) {
  const socket = join(tmp, `${name}.sock`);
  const handle = spawnTracked('nbdkit', ['-f', '--exit-with-parent', '-U', socket, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 400 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(socket)) fail(`nbdkit ${args.join(' ')} did not start`);
  return { socket, handle };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!existsSync(join(repo, 'dist', 'cli', 'nbdcopy.js'))) fail('dist/ is not built: run npm run build first');
  for (const tool of ['nbdkit', 'psktool', LIBNBD]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      fail(`${tool} is not installed`);
    }
  }
  installSignalHandlers();
  const tmp = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'tls-bench-'));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const psk = join(tmp, 'keys.psk');
  execFileSync('psktool', ['-u', 'bench', '-p', psk], { stdio: 'ignore' });

  const bytes = bytesOf(opts.size);
  const tls = await startNbdkit(tmp, 'tls', ['--tls=require', `--tls-psk=${psk}`, 'pattern', `size=${opts.size}`]);
  const plain = await startNbdkit(tmp, 'plain', ['pattern', `size=${opts.size}`]);
  const tlsDst = await startNbdkit(tmp, 'tlsdst', ['--tls=require', `--tls-psk=${psk}`, 'null', `size=${opts.size}`]);
  const q = encodeURIComponent;
  const tlsUri = (s) => `nbds+unix://bench@/?socket=${q(s)}&tls-psk-file=${q(psk)}`;
  const scenarios = [
    { name: 'tls pattern -> null:', args: [tlsUri(tls.socket), 'null:'] },
    { name: 'tls pattern -> null: -C 1', args: ['-C', '1', tlsUri(tls.socket), 'null:'] },
    { name: 'tls pattern -> tls nbdkit null', args: [tlsUri(tls.socket), tlsUri(tlsDst.socket)] },
    { name: 'plaintext pattern -> null:', args: [`nbd+unix:///?socket=${q(plain.socket)}`, 'null:'] },
  ];
  const tools = [{ id: 'ours', bin: OURS }, { id: 'libnbd', bin: LIBNBD }];
  const results = [];
  const env = { machineLoad: (await import('node:os')).loadavg()[0] };
  console.log(`TLS copy bench: ${opts.size} pattern from nbdkit --tls=require --tls-psk, ${opts.runs} runs per tool, medians (load average at start ${env.machineLoad.toFixed(1)})`);
  for (const sc of scenarios.filter((x) => opts.only === null || x.name.includes(opts.only))) {
    const runs = { ours: [], libnbd: [] };
    for (let i = -1; i < opts.runs; i++) {
      for (const t of tools) {
        const r = await runMeasured({ argv: [t.bin, ...sc.args], tmpDir: tmp, timeoutMs: 600_000 });
        if (!r.ok) fail(`${t.id} failed on '${sc.name}': ${r.error}`);
        if (i >= 0) runs[t.id].push(r);
        if (process.env.BENCH_VERBOSE === '1') console.log(`  ${sc.name} ${t.id} run ${i}: ${r.wallMs.toFixed(0)} ms`);
      }
    }
    const row = { scenario: sc.name, bytes };
    for (const t of tools) {
      const wall = median(runs[t.id].map((r) => r.wallMs));
      const cpu = runs[t.id][0].userMs === null ? null : median(runs[t.id].map((r) => r.userMs + r.sysMs));
      row[t.id] = { wallMs: wall, mbPerS: bytes / 1e6 / (wall / 1000), cpuMs: cpu, runsMs: runs[t.id].map((r) => Math.round(r.wallMs)) };
    }
    row.ratio = row.ours.wallMs / row.libnbd.wallMs;
    results.push(row);
    const fmt = (x) => `${(x.wallMs / 1000).toFixed(2)} s ${x.mbPerS.toFixed(0).padStart(5)} MB/s${x.cpuMs === null ? '' : ` cpu ${(x.cpuMs / 1000).toFixed(2)} s`}`;
    console.log(`${sc.name.padEnd(32)} ours ${fmt(row.ours)} | libnbd ${fmt(row.libnbd)} | ours/libnbd ${row.ratio.toFixed(2)}`);
  }
  await Promise.all([tls, plain, tlsDst].map((s) => stopChild(s.handle)));
  if (opts.json) writeFileSync(opts.json, JSON.stringify({ size: opts.size, runs: opts.runs, loadAtStart: env.machineLoad, results }, null, 2) + '\n');
}

main().catch((err) => fail(process.env.NBD_DEBUG === '1' ? err.stack : err.message));
