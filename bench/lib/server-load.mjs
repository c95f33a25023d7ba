// The parts of the server load and abuse run shared by bench/server-load.mjs (60 s) and its
// short form in `npm test` (test/server-load.test.ts): the checked load, the abusers, the good
// client's round trips, the server's peak RSS, and who closed each connection. The caller
// starts the server and passes the client library's connect(), so this file depends on neither.
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** Each load worker owns one slot of the disk: 64 KiB it writes, reads back and checks. */
export const SLOT = 64 * 1024;

/** Deterministic numbers in [0, 1): a 32-bit LCG (Math.imul keeps the product exact). */
export function makeRandom(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

/** The process's peak RSS so far (VmHWM), in bytes; 0 once it is gone. */
export function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples a process's peak RSS every 250 ms, so the figure survives the process's exit. */
export function rssWatch(pid) {
  let peak = peakRss(pid);
  const timer = setInterval(() => { peak = Math.max(peak, peakRss(pid)); }, 250);
  return {
    peakBytes() {
      peak = Math.max(peak, peakRss(pid));
      return peak;
    },
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, peakRss(pid));
      return peak;
    },
  };
}

const round3 = (x) => Math.round(x * 1000) / 1000;
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN);

/** Count, median, 99th percentile and maximum of latencies in milliseconds. */
export function latencySummary(lat) {
  const s = Float64Array.from(lat).sort();
  return { n: s.length, p50_ms: round3(pct(s, 0.5)), p99_ms: round3(pct(s, 0.99)), max_ms: round3(s[s.length - 1] ?? NaN) };
}

/**
 * A connection the server ended while we still wanted it is a drop; one we closed is not.
 * Asked before our own close: a client library connection that is 'dead' was ended by the
 * other side (or the transport), never by close().
 */
function serverDrops(clients) {
  const dead = clients.filter((c) => c.state === 'dead');
  return { count: dead.length, reasons: [...new Set(dead.map((c) => c.error?.message ?? 'no reason'))] };
}

/**
 * CLIENTS connections x DEPTH workers, each owning the disjoint slot (client i, worker j) it
 * reads (checked against its model), writes, zeroes, trims, flushes and asks block status of
 * (a range reported zero must be zero in the model), until `seconds` have passed since every
 * client connected (then `connected` is called).
 */
export async function runLoad({ connect, uri, clients: nClients, depth, seconds, seed = 12345, connected }) {
  const rnd = makeRandom(seed);
  const lat = [];
  const counts = { read: 0, write: 0, zero: 0, trim: 0, flush: 0, block_status: 0 };
  const errors = [];
  const clients = await Promise.all(Array.from({ length: nClients }, () => connect(uri, { maxInFlight: depth })));
  connected?.();
  const deadline = Date.now() + seconds * 1000;
  // One model of the whole disk: a large zeroed buffer is mapped lazily, so workers that start
  // together do not first clear 64 KiB each.
  const disk = Buffer.alloc(nClients * depth * SLOT);
  const worker = async (c, base) => {
    const model = disk.subarray(base, base + SLOT);
    while (Date.now() < deadline && errors.length === 0) {
      const off = Math.floor(rnd() * 16) * 4096;
      const len = 4096 * (1 + Math.floor(rnd() * (16 - off / 4096)));
      const r = rnd();
      const t0 = performance.now();
      try {
        if (r < 0.35) {
          const b = Buffer.allocUnsafe(len);
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
        errors.push(String(err?.message ?? err));
      }
      lat.push(performance.now() - t0);
    }
  };
  await Promise.all(clients.flatMap((c, i) => Array.from({ length: depth }, (_, j) => worker(c, (i * depth + j) * SLOT))));
  const drops = serverDrops(clients);
  await Promise.all(clients.map((c) => c.close()));
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return { requests: counts, total, errors: errors.length, first_error: errors[0], dropped_by_server: drops, latency: latencySummary(lat) };
}

/**
 * One good client's round trips (64 KiB written at `offset`, read back and compared) until
 * `until` (a Date.now() time); returns each round trip's milliseconds. A wrong read throws.
 */
export async function roundTrips(client, until, offset = 0) {
  const data = Buffer.alloc(65536, 7);
  const buf = Buffer.alloc(65536);
  const lat = [];
  while (Date.now() < until) {
    const t0 = performance.now();
    await client.pwrite(data, offset);
    await client.pread(buf, offset);
    if (!buf.equals(data)) throw new Error('the good client read wrong data');
    lat.push(performance.now() - t0);
  }
  return lat;
}

/** Whether the good client's connection was ended by the server (asked before closing it). */
export function droppedByServer(client) {
  return serverDrops([client]).count > 0;
}

// ---- abusers ----

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
/** Client flags: fixed newstyle, no zeroes. */
const FLAGS = Buffer.from([0, 0, 0, 3]);
const EXPORT_NAME = option(1);
const OPT_LIST = 3;
const CMD_READ = 0;
const CMD_WRITE = 1;

/** Bytes a client sees up to transmission after EXPORT_NAME: greeting 18, export reply 10 (no zeroes). */
const HANDSHAKE_REPLY = 28;

/**
 * The abusers on Unix socket `sock`. Opening them negotiates two in advance (so a busy client
 * process cannot make them miss the handshake timeout): the flooder and the 4 GiB writer enter
 * transmission with EXPORT_NAME and wait. start() then opens the rest and lets them all go:
 * - `halfHandshakes` connections that read the greeting and never answer it;
 * - the flooder: `floodRequests` READs of 64 KiB in one write, replies never read;
 * - a chatterer: `options` OPT_LIST in one write, then one every 100 ms, replies never read (a
 *   write after the server closed fails: how a drop shows on a socket that reads nothing);
 * - the 4 GiB WRITE header, then nothing.
 * Each socket records who ended it: a close we did not ask for is a drop by the server, with
 * how (EOF, or the error: EPIPE, ECONNRESET) and how many milliseconds after start().
 */
export async function openAbusers(sock, { halfHandshakes = 500, floodRequests = 20_000, options = 5000 } = {}) {
  let t0 = Date.now();
  const sockets = [];
  const open = (kind, onConnect) => {
    const s = net.connect(sock);
    const rec = { kind, socket: s, closedByUs: false, how: undefined, droppedAfterMs: undefined };
    s.on('end', () => { rec.how ??= 'EOF'; });
    s.on('error', (err) => { rec.how ??= err.code ?? err.message; });
    s.on('close', () => {
      if (!rec.closedByUs) rec.droppedAfterMs = Date.now() - t0;
    });
    s.on('connect', () => onConnect(s, rec));
    sockets.push(rec);
    return rec;
  };
  const negotiated = (kind) => new Promise((resolve, reject) => {
    let got = 0;
    const onData = (chunk) => {
      got += chunk.length;
      if (got < HANDSHAKE_REPLY) return;
      // From here on nothing is read: replies pile up on the server's side.
      rec.socket.off('data', onData);
      rec.socket.pause();
      resolve(rec);
    };
    const rec = open(kind, (s) => s.write(Buffer.concat([FLAGS, EXPORT_NAME])));
    rec.socket.on('data', onData);
    rec.socket.on('close', () => reject(new Error(`the ${kind} abuser was closed during its handshake`)));
  });
  const [flooder, writer] = await Promise.all([negotiated('flooder'), negotiated('write_4g')]);

  const start = () => {
    t0 = Date.now();
    for (let i = 0; i < halfHandshakes; i++) open('half_handshake', () => {}).socket.on('data', () => {});
    const flood = [];
    for (let i = 0; i < floodRequests; i++) flood.push(request(CMD_READ, i, 0, 65536));
    flooder.socket.write(Buffer.concat(flood));
    // Read, so that the drop shows as EOF at once.
    writer.socket.on('data', () => {});
    writer.socket.resume();
    writer.socket.write(request(CMD_WRITE, 1, 0, 0xffffffff));
    open('options', (s, rec) => {
      const one = option(OPT_LIST);
      s.write(Buffer.concat([FLAGS, ...Array.from({ length: options }, () => one)]));
      let sent = options;
      // Then one more every 100 ms: a write is how a drop shows on a socket never read.
      const timer = setInterval(() => {
        if (s.destroyed) return clearInterval(timer);
        s.write(one);
        sent++;
      }, 100);
      s.on('close', () => clearInterval(timer));
      rec.optionsSent = () => sent;
    }).socket.pause();
  };

  const report = () => {
    const out = {};
    for (const r of sockets) {
      const k = (out[r.kind] ??= { opened: 0, dropped_by_server: 0, closed_by_us: 0, open: 0, how: {}, last_drop_ms: 0 });
      k.opened++;
      if (r.droppedAfterMs !== undefined) {
        k.dropped_by_server++;
        k.how[r.how ?? 'close'] = (k.how[r.how ?? 'close'] ?? 0) + 1;
        k.last_drop_ms = Math.max(k.last_drop_ms, r.droppedAfterMs);
      } else if (r.closedByUs) k.closed_by_us++;
      else k.open++;
      if (r.optionsSent) k.options_sent = r.optionsSent();
    }
    return out;
  };
  return {
    /** Opens the rest and lets every abuser go. */
    start,
    /** Per kind: opened, dropped by the server (how, and the last one's ms), still open. */
    report,
    /** Closes what the server left open (counted as closed by us) and reports. */
    async stop() {
      const before = report();
      for (const r of sockets) {
        if (r.droppedAfterMs !== undefined || r.socket.destroyed) continue;
        r.closedByUs = true;
        r.socket.destroy();
      }
      await new Promise((res) => setImmediate(res));
      const after = report();
      for (const [kind, k] of Object.entries(after)) k.open_at_stop = before[kind].open;
      return after;
    },
  };
}
