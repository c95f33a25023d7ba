#!/usr/bin/env node
// Our server under load and under abuse, on a private Unix socket, bounded in time.
//   node bench/server-load.mjs [--seconds 60] [--clients 64] [--depth 64] [--backend memory,file]
//                              [--handshake-timeout 3s] [--abuse-only] [--no-abuse]
// Load: CLIENTS connections × DEPTH requests in flight, each in-flight slot owning a disjoint
// range it reads, writes, zeroes, trims, flushes and asks block status of, every read checked
// against the model. Abuse: a good client's latency in alternating idle and abuse phases while
// 500 connections never finish the handshake, one floods requests without reading, one sends
// thousands of options, one sends a 4 GiB WRITE header. The parts shared with the short run in
// `npm test` are in lib/server-load.mjs. Prints JSON; exit 1 on any error, any good connection
// dropped by the server, or a server peak RSS of 512 MiB or more.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../dist/client/index.js';
import { SLOT, droppedByServer, latencySummary, roundTrips, rssWatch, runLoad, openAbusers } from './lib/server-load.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const SECONDS = Number(opt('seconds', '60'));
const CLIENTS = Number(opt('clients', '64'));
const DEPTH = Number(opt('depth', '64'));
const BACKENDS = (opt('backend', 'memory,file')).split(',');
const HANDSHAKE_TIMEOUT = opt('handshake-timeout', '3s');
const MiB = 2 ** 20;

function startServer(backend, dir, size) {
  const sock = join(dir, 'sock');
  const bargs = backend === 'file' ? ['file', join(dir, 'disk.img')] : ['memory', String(size)];
  if (backend === 'file') {
    // A sparse file of SIZE bytes.
    const fd = openSync(join(dir, 'disk.img'), 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
  }
  const child = spawn(process.execPath, [join(REPO, 'bin/nbdserve'), '-U', sock, '--handshake-timeout', HANDSHAKE_TIMEOUT, ...bargs], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { sock, child, uri: `nbd+unix:///?socket=${sock}` };
}

async function waitSocket(sock) {
  for (let i = 0; i < 400; i++) {
    if (existsSync(sock)) {
      const ok = await new Promise((r) => { const s = net.connect(sock); s.on('connect', () => { s.destroy(); r(true); }); s.on('error', () => r(false)); });
      if (ok) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server did not start');
}

async function withServer(backend, size, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'server-load-'));
  const srv = startServer(backend, dir, size);
  try {
    await waitSocket(srv.sock);
    return await fn(srv);
  } finally {
    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.exitCode !== null ? r() : srv.child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const load = (backend) => withServer(backend, CLIENTS * DEPTH * SLOT, async (srv) => {
  const rss = rssWatch(srv.child.pid);
  const load1 = loadavg()[0];
  const r = await runLoad({ connect, uri: srv.uri, clients: CLIENTS, depth: DEPTH, seconds: SECONDS });
  return {
    backend, disk_mib: CLIENTS * DEPTH * SLOT / MiB, seconds: SECONDS, clients: CLIENTS, in_flight_per_client: DEPTH,
    load_average_1m: { start: load1, end: loadavg()[0] }, ...r, server_peak_rss_mib: Math.round(rss.stop() / MiB),
  };
});

const abuse = (backend) => withServer(backend, 64 * MiB, async (srv) => {
  const good = await connect(srv.uri);
  const idle = [];
  const abused = [];
  const rounds = [];
  const rss = rssWatch(srv.child.pid);
  const load1 = loadavg()[0];
  const nRounds = Math.max(1, Math.floor(SECONDS / 10));
  const phaseMs = (SECONDS * 1000) / (2 * nRounds);
  for (let r = 0; r < nRounds; r++) {
    idle.push(...await roundTrips(good, Date.now() + phaseMs));
    const abusers = await openAbusers(srv.sock);
    abusers.start();
    abused.push(...await roundTrips(good, Date.now() + phaseMs));
    // The flooder finished its handshake and is only held by flow control: it is still there.
    rounds.push(await abusers.stop());
    await new Promise((res) => setTimeout(res, 200));
  }
  const goodDropped = droppedByServer(good);
  await good.close();
  const i = latencySummary(idle);
  const a = latencySummary(abused);
  // Per kind over all rounds: opened, dropped by the server, closed by us, slowest drop.
  const abusers = {};
  for (const round of rounds) {
    for (const [kind, k] of Object.entries(round)) {
      const t = (abusers[kind] ??= { opened: 0, dropped_by_server: 0, closed_by_us: 0, how: {}, slowest_drop_ms: 0 });
      t.opened += k.opened;
      t.dropped_by_server += k.dropped_by_server;
      t.closed_by_us += k.closed_by_us;
      for (const [how, n] of Object.entries(k.how)) t.how[how] = (t.how[how] ?? 0) + n;
      t.slowest_drop_ms = Math.max(t.slowest_drop_ms, k.last_drop_ms);
    }
  }
  return {
    backend, rounds: nRounds, phase_ms: Math.round(phaseMs), handshake_timeout: HANDSHAKE_TIMEOUT,
    load_average_1m: { start: load1, end: loadavg()[0] },
    good_client_idle: i, good_client_under_abuse: a, p50_ratio: Math.round((a.p50_ms / i.p50_ms) * 100) / 100,
    p99_ratio: Math.round((a.p99_ms / i.p99_ms) * 100) / 100, good_client_dropped_by_server: goodDropped,
    abusers, server_peak_rss_mib: Math.round(rss.stop() / MiB),
  };
});

const out = { load: [], abuse: [] };
if (!args.includes('--abuse-only')) for (const b of BACKENDS) out.load.push(await load(b));
if (!args.includes('--no-abuse')) out.abuse.push(await abuse('memory'));
console.log(JSON.stringify(out, null, 2));
const bad = out.load.some((l) => l.errors > 0 || l.dropped_by_server.count > 0 || l.server_peak_rss_mib >= 512)
  || out.abuse.some((a) => a.good_client_dropped_by_server || a.server_peak_rss_mib >= 512);
process.exit(bad ? 1 : 0);
