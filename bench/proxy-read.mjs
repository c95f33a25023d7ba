#!/usr/bin/env node
// The forwarding server: libnbd's nbdcopy reads `pattern SIZE` into null: from one nbdkit
// upstream, through our proxy (`bin/nbdserve nbd socket=UP`) and through nbdkit's own nbd
// plugin (`nbdkit nbd socket=UP`), alternating runs so both see the same machine load. Each
// run starts a fresh proxy and reads its peak RSS (VmHWM) before stopping it. Prints every
// run, the medians, ours ÷ theirs, and the largest peak RSS of each proxy.
// Needs `npm run build` first (bin/nbdserve loads dist/).
// Usage: node bench/proxy-read.mjs [--size 4G] [--runs 3] [-- extra nbdcopy args...]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const extra = dash >= 0 ? argv.slice(dash + 1) : [];
const opts = dash >= 0 ? argv.slice(0, dash) : argv;
const option = (name, fallback) => {
  const i = opts.indexOf(name);
  return i >= 0 && opts[i + 1] !== undefined ? opts[i + 1] : fallback;
};
const size = option('--size', '4G');
const runs = Number(option('--runs', '3'));
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got ${option('--runs')}`);

const dir = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'proxy-read-'));
const upSock = join(dir, 'up.sock');
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function canConnect(path) {
  return new Promise((resolve) => {
    const s = connect(path, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function startServer(cmd, args, sock, quiet = false) {
  // nbdkit nbd logs every probe connection that leaves before its handshake: quiet for proxies.
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', quiet ? 'ignore' : 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  for (const until = Date.now() + 15_000; ;) {
    if (child.exitCode !== null) throw new Error(`${cmd} ${args.join(' ')} exited with status ${child.exitCode}`);
    if (existsSync(sock) && (await canConnect(sock))) return child;
    if (Date.now() > until) throw new Error(`${cmd} ${args.join(' ')}: not listening after 15 s`);
    await sleep(20);
  }
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/** Peak resident set size of a live process, in KiB. */
function peakRssKb(pid) {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

const proxies = {
  ours: (sock) => [process.execPath, [join(repo, 'bin', 'nbdserve'), '-U', sock, 'nbd', `socket=${upSock}`]],
  'nbdkit-nbd': (sock) => ['nbdkit', ['-f', '-U', sock, 'nbd', `socket=${upSock}`]],
};

async function once(name, index) {
  const sock = join(dir, `${name}-${index}.sock`);
  const [cmd, args] = proxies[name](sock);
  const proxy = await startServer(cmd, args, sock, true);
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/nbdcopy', [...extra, `nbd+unix:///?socket=${sock}`, 'null:'], { stdio: ['ignore', 'inherit', 'inherit'] });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) throw new Error(`nbdcopy through ${name} failed with status ${r.status}`);
    return { secs, rssKb: peakRssKb(proxy.pid) };
  } finally {
    await stop(proxy);
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const upstream = await startServer('nbdkit', ['-f', '-U', upSock, 'pattern', size], upSock);
const results = { ours: [], 'nbdkit-nbd': [] };
try {
  await once('ours', 'warm-up');
  for (let i = 0; i < runs; i++) {
    for (const name of i % 2 ? ['nbdkit-nbd', 'ours'] : ['ours', 'nbdkit-nbd']) {
      const r = await once(name, i);
      results[name].push(r);
      console.log(`run ${i + 1} ${name.padEnd(10)} ${r.secs.toFixed(3)} s  peak RSS ${(r.rssKb / 1024).toFixed(1)} MiB`);
    }
  }
} finally {
  await stop(upstream);
}
const ours = median(results.ours.map((r) => r.secs));
const theirs = median(results['nbdkit-nbd'].map((r) => r.secs));
const rss = (name) => (Math.max(...results[name].map((r) => r.rssKb)) / 1024).toFixed(1);
console.log(`nbdcopy ${extra.join(' ')} <proxy> null: from nbdkit pattern ${size}: median ours ${ours.toFixed(3)} s, ` +
  `nbdkit nbd ${theirs.toFixed(3)} s, ours ÷ theirs ${(ours / theirs).toFixed(2)}; peak RSS ours ${rss('ours')} MiB, nbdkit nbd ${rss('nbdkit-nbd')} MiB`);
