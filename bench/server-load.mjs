#!/usr/bin/env node
// Our server under load and under abuse, on a private Unix socket, bounded in time.
//   node bench/server-load.mjs [--seconds 60] [--clients 64] [--depth 64] [--backend memory|file] [--abuse-only] [--no-abuse]
// Load: CLIENTS connections × DEPTH requests in flight, each in-flight slot owning a disjoint
// range it reads, writes, zeroes, trims, flushes and asks block status of, every read checked
// against the model. Abuse: a good client's latency in alternating idle and abuse phases while
// 500 connections never finish the handshake, one floods requests without reading, one sends
// thousands of options, one sends a 4 GiB WRITE header. Prints JSON; exit 1 on any error.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../dist/client/index.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const SECONDS = Number(opt('seconds', '60'));
const CLIENTS = Number(opt('clients', '64'));
const DEPTH = Number(opt('depth', '64'));
const BACKENDS = (opt('backend', 'memory,file')).split(',');
const SLOT = 64 * 1024;
const HANDSHAKE_TIMEOUT = opt('handshake-timeout', '3s');

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

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch { return 0; }
}

const pct = (sorted, p) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
const ms = (x) => Math.round(x * 1000) / 1000;
function summary(lat) {
  const s = Float64Array.from(lat).sort();
  return { n: s.length, p50_ms: ms(pct(s, 0.5)), p99_ms: ms(pct(s, 0.99)), max_ms: ms(s[s.length - 1] ?? NaN) };
}

let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);

async function load(backend) {
  const dir = mkdtempSync(join(tmpdir(), 'server-load-'));
  const size = CLIENTS * DEPTH * SLOT;
  const srv = startServer(backend, dir, size);
  try {
    await waitSocket(srv.sock);
    const lat = [];
    const counts = { read: 0, write: 0, zero: 0, trim: 0, flush: 0, block_status: 0 };
    const errors = [];
    const deadline = Date.now() + SECONDS * 1000;
    let rssPeak = 0;
    const rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, peakRss(srv.child.pid)); }, 250);
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => connect(srv.uri, { maxInFlight: DEPTH })));
    const worker = async (c, base) => {
      const model = Buffer.alloc(SLOT);
      const buf = Buffer.alloc(SLOT);
      while (Date.now() < deadline && errors.length === 0) {
        const off = Math.floor(rnd() * 16) * 4096;
        const len = 4096 * (1 + Math.floor(rnd() * (16 - off / 4096)));
        const r = rnd();
        const t0 = performance.now();
        try {
          if (r < 0.35) {
            const b = buf.subarray(0, len);
            await c.pread(b, base + off);
            counts.read++;
            if (!b.equals(model.subarray(off, off + len))) errors.push(`read at ${base + off}+${len} differs from the model`);
          } else if (r < 0.65) {
            const d = Buffer.alloc(len, Math.floor(rnd() * 255) + 1);
            await c.pwrite(d, base + off);
            d.copy(model, off);
            counts.write++;
          } else if (r < 0.75) {
            await c.zero(len, base + off);
            model.fill(0, off, off + len);
            counts.zero++;
          } else if (r < 0.85) {
            // Both backends punch a hole: a trimmed range reads back as zeroes.
            await c.trim(len, base + off);
            model.fill(0, off, off + len);
            counts.trim++;
          } else if (r < 0.9) {
            await c.flush();
            counts.flush++;
          } else {
            const res = await c.blockStatus(len, base + off);
            counts.block_status++;
            let pos = off;
            for (const e of res.get('base:allocation') ?? []) {
              const n = Math.min(e.length, off + len - pos);
              if ((e.flags & 2) && model.subarray(pos, pos + n).some((x) => x !== 0)) errors.push(`block status says zero at ${base + pos}+${n} but the model has data`);
              pos += n;
              if (pos >= off + len) break;
            }
          }
        } catch (err) {
          errors.push(String(err.message ?? err));
        }
        lat.push(performance.now() - t0);
      }
    };
    await Promise.all(clients.flatMap((c, i) => Array.from({ length: DEPTH }, (_, j) => worker(c, (i * DEPTH + j) * SLOT))));
    await Promise.all(clients.map((c) => c.close()));
    clearInterval(rssTimer);
    rssPeak = Math.max(rssPeak, peakRss(srv.child.pid));
    return { backend, seconds: SECONDS, clients: CLIENTS, in_flight_per_client: DEPTH, requests: counts, errors: errors.length, first_error: errors[0], server_peak_rss_mib: Math.round(rssPeak / 2 ** 20), latency: summary(lat) };
  } finally {
    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.exitCode !== null ? r() : srv.child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Raw bytes: client flags (fixed newstyle, no zeroes), then what the abuser sends. */
function rawConnect(sock, bytes, onClose) {
  const s = net.connect(sock);
  s.on('error', () => {});
  s.on('close', onClose);
  s.on('connect', () => { if (bytes) s.write(bytes); });
  return s;
}
function option(code, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(16);
  h.write('IHAVEOPT', 0, 'latin1');
  h.writeUInt32BE(code, 8);
  h.writeUInt32BE(payload.length, 12);
  return Buffer.concat([h, payload]);
}
function request(type, cookie, offset, length) {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(0x25609513, 0);
  h.writeUInt16BE(type, 6);
  h.writeUInt32BE(cookie, 12);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}
const FLAGS = Buffer.from([0, 0, 0, 3]);
const EXPORT_NAME = option(1);

async function abuse(backend) {
  const dir = mkdtempSync(join(tmpdir(), 'server-abuse-'));
  const srv = startServer(backend, dir, 64 << 20);
  const sockets = [];
  try {
    await waitSocket(srv.sock);
    const good = await connect(srv.uri);
    const data = Buffer.alloc(65536, 7);
    const buf = Buffer.alloc(65536);
    const phase = async (until) => {
      const lat = [];
      while (Date.now() < until) {
        const t0 = performance.now();
        await good.pwrite(data, 0);
        await good.pread(buf, 0);
        if (!buf.equals(data)) throw new Error('good client read wrong data');
        lat.push(performance.now() - t0);
      }
      return lat;
    };
    const idle = [];
    const abused = [];
    const dropped = { never_handshake: 0, flooder: 0, options: 0, write_4g: 0 };
    const openedAt = {};
    const droppedAt = {};
    const rounds = Math.max(1, Math.floor(SECONDS / 10));
    let rssPeak = 0;
    const rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, peakRss(srv.child.pid)); }, 250);
    const phaseMs = (SECONDS * 1000) / (2 * rounds);
    for (let r = 0; r < rounds; r++) {
      idle.push(...await phase(Date.now() + phaseMs));
      const t = Date.now();
      for (let i = 0; i < 500; i++) sockets.push(rawConnect(srv.sock, undefined, () => { dropped.never_handshake++; droppedAt.never_handshake = Date.now() - t; }));
      const flood = [FLAGS, EXPORT_NAME];
      for (let i = 0; i < 20000; i++) flood.push(request(0, i, 0, 65536));
      const f = rawConnect(srv.sock, Buffer.concat(flood), () => { dropped.flooder++; droppedAt.flooder = Date.now() - t; });
      f.pause();
      sockets.push(f);
      const opts = [FLAGS];
      for (let i = 0; i < 5000; i++) opts.push(option(3)); // NBD_OPT_LIST, replies never read
      const o = rawConnect(srv.sock, Buffer.concat(opts), () => { dropped.options++; droppedAt.options = Date.now() - t; });
      o.pause();
      sockets.push(o);
      sockets.push(rawConnect(srv.sock, Buffer.concat([FLAGS, EXPORT_NAME, request(1, 1, 0, 0xffffffff)]), () => { dropped.write_4g++; droppedAt.write_4g = Date.now() - t; }));
      openedAt[r] = t;
      abused.push(...await phase(Date.now() + phaseMs));
      // The flooder is still connected when its handshake succeeded: end it before the next idle phase.
      for (const s of sockets.splice(0)) s.destroy();
      await new Promise((res) => setTimeout(res, 200));
    }
    clearInterval(rssTimer);
    await good.close();
    rssPeak = Math.max(rssPeak, peakRss(srv.child.pid));
    const i = summary(idle);
    const a = summary(abused);
    return {
      backend, rounds, phase_ms: Math.round(phaseMs), handshake_timeout: HANDSHAKE_TIMEOUT,
      good_client_idle: i, good_client_under_abuse: a, p50_ratio: ms(a.p50_ms / i.p50_ms), p99_ratio: ms(a.p99_ms / i.p99_ms),
      dropped_by_server_before_phase_end: dropped, last_drop_ms_after_start: droppedAt, server_peak_rss_mib: Math.round(rssPeak / 2 ** 20),
    };
  } finally {
    for (const s of sockets) s.destroy();
    srv.child.kill('SIGTERM');
    await new Promise((r) => srv.child.exitCode !== null ? r() : srv.child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const out = { load: [], abuse: [] };
if (!args.includes('--abuse-only')) for (const b of BACKENDS) out.load.push(await load(b));
if (!args.includes('--no-abuse')) out.abuse.push(await abuse('memory'));
console.log(JSON.stringify(out, null, 2));
const bad = out.load.some((l) => l.errors > 0 || l.server_peak_rss_mib >= 512) || out.abuse.some((a) => a.server_peak_rss_mib >= 512);
process.exit(bad ? 1 : 0);
