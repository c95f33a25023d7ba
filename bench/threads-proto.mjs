#!/usr/bin/env node
// Prototype: does running each NBD connection on its own worker thread beat running all of
// them on one event loop? Reads a whole nbdkit `pattern SIZE` export to nowhere, four ways
// (--modes letters):
//   one-thread   : (a) 2 connections on the main thread (today's nbdcopy shape)
//   two-workers  : (b) 2 worker_threads, each with its own connection, pulling slices from a
//                  shared Atomics counter; the process time includes starting the workers
//                  and loading the client modules in each of them
//   main+worker  : (mode d) the main thread reads on one connection at once, one worker
//                  thread on the other; both pull slices from the shared counter
//   libnbd       : (c) /usr/bin/nbdcopy URI null: (threads = cores = 2 connections here)
// The table also gives the nbdkit server's CPU during each run (from /proc/PID/stat).
// Result on 2 cores (Nov 2026): workers win 10-20% wall at 4G but tie at 1G with ~45% more
// CPU (worker boot + module load about 60 ms each), and lose on NBD -> NBD 1G.
// Each run is a fresh process under /usr/bin/time (wall, user, sys, max RSS); the modes are
// interleaved (order rotated every round) and the report gives medians.
// Needs `npx tsc -p tsconfig.json` (imports dist/client) or --client PATH to an ESM build
// of src/client/index.ts (e.g. an esbuild bundle, to see what a bundled worker costs).
//
// Usage: node bench/threads-proto.mjs [--sizes 4G,1G] [--runs 5] [--depth 64]
//          [--request 262144] [--slice 33554432] [--connections 2] [--modes a,b,d,c]
//          [--client dist/client/index.js] [--dest memory]
// --dest memory: also write every block to an nbdkit memory export (an NBD -> NBD copy;
// libnbd's nbdcopy then copies URI -> that export). "server CPU" is the source's only.
// Run it under the shared lock: flock /tmp/bench.lock node bench/threads-proto.mjs
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const SELF = fileURLToPath(import.meta.url);
const REPO = resolve(SELF, '../..');

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/**
 * Reads [slice after slice) of the export on one connection with `depth` requests in
 * flight, each into a buffer taken from a last-in first-out pool when its data arrives
 * (as the copier does). `nextSlice()` returns the next slice start or -1 when done.
 * Checks the first word of every request: the pattern plugin stores each 8-byte word's
 * own offset, big-endian, so a wrong or shifted read cannot pass silently.
 * With `dest` (--dest memory): writes each block there at the same offset before reusing
 * its buffer, like an NBD -> NBD copy.
 */
async function readConnection(client, size, depth, reqSize, sliceSize, nextSlice, dest) {
  const pool = [];
  const take = () => pool.pop() ?? Buffer.allocUnsafeSlow(reqSize);
  let pos = 0;
  let end = 0;
  let bytes = 0;
  async function lane() {
    for (;;) {
      if (pos >= end) {
        const start = nextSlice();
        if (start < 0) return;
        pos = start;
        end = Math.min(size, start + sliceSize);
      }
      const off = pos;
      const len = Math.min(reqSize, end - off);
      pos += len;
      const buf = await client.preadTake(len, off, take);
      if (len >= 8 && buf.readBigUInt64BE(0) !== BigInt(off)) throw new Error(`bad data at ${off}`);
      if (dest) await dest.pwrite(len === buf.length ? buf : buf.subarray(0, len), off);
      bytes += len;
      pool.push(buf);
    }
  }
  await Promise.all(Array.from({ length: depth }, lane));
  return bytes;
}

async function loadClient(path) {
  return import(pathToFileURL(resolve(REPO, path)).href);
}

/** Child process, mode one-thread: all connections on this event loop. */
async function runOneThread({ uri, destUri, depth, reqSize, sliceSize, connections, client: clientPath }) {
  const { connect } = await loadClient(clientPath);
  const clients = await Promise.all(Array.from({ length: connections }, () => connect(uri, { maxInFlight: depth })));
  const dests = destUri
    ? await Promise.all(Array.from({ length: connections }, () => connect(destUri, { maxInFlight: depth })))
    : [];
  const size = clients[0].export.size;
  let next = 0;
  const nextSlice = () => {
    if (next >= size) return -1;
    const s = next;
    next += sliceSize;
    return s;
  };
  const counts = await Promise.all(
    clients.map((c, i) => readConnection(c, size, depth, reqSize, sliceSize, nextSlice, dests[i])),
  );
  await Promise.all([...clients, ...dests].map((c) => c.close()));
  const total = counts.reduce((a, b) => a + b, 0);
  if (total !== size) throw new Error(`read ${total} of ${size} bytes`);
  return {};
}

/**
 * Child process, mode two-workers (b): one worker thread per connection; mode main+worker
 * (d): the main thread reads on one connection itself while the other connections' workers
 * start, so the first bytes flow without waiting for a worker to boot.
 */
async function runWorkers({ uri, destUri, depth, reqSize, sliceSize, connections, client }, mainToo) {
  const t0 = performance.now();
  // [0] = next slice index (shared by all threads), [1] = bytes read.
  const shared = new SharedArrayBuffer(16);
  const counters = new BigInt64Array(shared);
  const nextSlice = (size) => () => {
    const s = Number(Atomics.add(counters, 0, 1n)) * sliceSize;
    return s < size ? s : -1;
  };
  const workers = Array.from({ length: connections - (mainToo ? 1 : 0) }, () =>
    new Worker(new URL(import.meta.url), { workerData: { uri, destUri, depth, reqSize, sliceSize, client, shared } }),
  );
  const startup = [];
  let size = -1;
  const mine = [];
  if (mainToo) {
    const { connect } = await loadClient(client);
    const c = await connect(uri, { maxInFlight: depth });
    const d = destUri ? await connect(destUri, { maxInFlight: depth }) : undefined;
    mine.push(
      readConnection(c, c.export.size, depth, reqSize, sliceSize, nextSlice(c.export.size), d).then(async (bytes) => {
        Atomics.add(counters, 1, BigInt(bytes));
        await c.close();
        await d?.close();
      }),
    );
  }
  await Promise.all([
    ...mine,
    ...workers.map(
      (w) =>
        new Promise((resolveDone, reject) => {
          w.on('message', (m) => {
            if (m.type === 'connected') startup.push(performance.now() - t0);
            else if (m.type === 'done') {
              size = m.size;
              resolveDone();
            }
          });
          w.once('error', reject);
          w.once('exit', (code) => (code === 0 ? resolveDone() : reject(new Error(`worker exited ${code}`))));
        }),
    ),
  ]);
  const bytes = Number(Atomics.load(counters, 1));
  if (bytes !== size) throw new Error(`read ${bytes} of ${size} bytes`);
  return { workerConnectedMs: startup.map((x) => Math.round(x)) };
}

/** Worker thread body: its own client, its own connection, slices from the shared counter. */
async function workerMain() {
  const { uri, destUri, depth, reqSize, sliceSize, client: clientPath, shared } = workerData;
  const { connect } = await loadClient(clientPath);
  const client = await connect(uri, { maxInFlight: depth });
  const dest = destUri ? await connect(destUri, { maxInFlight: depth }) : undefined;
  parentPort.postMessage({ type: 'connected' });
  const size = client.export.size;
  const counters = new BigInt64Array(shared);
  const nextSlice = () => {
    const s = Number(Atomics.add(counters, 0, 1n)) * sliceSize;
    return s < size ? s : -1;
  };
  const bytes = await readConnection(client, size, depth, reqSize, sliceSize, nextSlice, dest);
  Atomics.add(counters, 1, BigInt(bytes));
  await client.close();
  await dest?.close();
  parentPort.postMessage({ type: 'done', size });
}

async function child(mode) {
  const params = {
    uri: option('uri'),
    destUri: option('dest-uri'),
    depth: Number(option('depth', 64)),
    reqSize: Number(option('request', 262144)),
    sliceSize: Number(option('slice', 32 * 2 ** 20)),
    connections: Number(option('connections', 2)),
    client: option('client', 'dist/client/index.js'),
  };
  const extra = mode === 'a' ? await runOneThread(params) : await runWorkers(params, mode === 'd');
  process.stdout.write(JSON.stringify(extra) + '\n');
}

// ---- driver ----

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const MODE_NAMES = {
  a: 'one thread, 2 conns',
  b: '2 workers, 1 conn each',
  d: 'main + 1 worker, 1 conn each',
  c: 'libnbd nbdcopy',
};

/** CPU seconds (user+sys) a process has used so far, from /proc/PID/stat. */
function processCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function timeRun(mode, uri, destUri, passArgs, serverPid) {
  const serverBefore = processCpu(serverPid);
  const destArgs = destUri ? ['--dest-uri', destUri] : [];
  const argv =
    mode === 'c'
      ? ['/usr/bin/nbdcopy', uri, destUri ?? 'null:']
      : [process.execPath, SELF, '--role', mode, '--uri', uri, ...destArgs, ...passArgs];
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S %M', ...argv], { encoding: 'utf8' });
  const line = r.stderr.split('\n').find((l) => l.startsWith('TIME '));
  if (r.status !== 0 || !line) throw new Error(`${MODE_NAMES[mode]} failed (${r.status}): ${r.stderr.trim()}`);
  const [wall, user, sys, rssKiB] = line.slice(5).split(' ').map(Number);
  let extra = {};
  if (mode !== 'c') extra = JSON.parse(r.stdout.trim().split('\n').pop() || '{}');
  return { wall, cpu: user + sys, serverCpu: processCpu(serverPid) - serverBefore, rssMiB: rssKiB / 1024, extra };
}

async function driver() {
  const sizes = option('sizes', '4G,1G').split(',');
  const runs = Number(option('runs', 5));
  const modes = option('modes', 'a,b,d,c').split(',');
  const withDest = option('dest') === 'memory';
  const passArgs = [];
  for (const name of ['depth', 'request', 'slice', 'connections', 'client']) {
    const v = option(name);
    if (v !== undefined) passArgs.push(`--${name}`, v);
  }
  const dir = mkdtempSync(join(tmpdir(), 'threads-proto-'));
  try {
    for (const size of sizes) {
      const sock = join(dir, `${size}.sock`);
      const server = spawn('nbdkit', ['-U', sock, '-f', '--exit-with-parent', 'pattern', `size=${size}`], { stdio: 'inherit' });
      const destSock = join(dir, `${size}-dest.sock`);
      const destServer = withDest
        ? spawn('nbdkit', ['-U', destSock, '-f', '--exit-with-parent', 'memory', `size=${size}`], { stdio: 'inherit' })
        : undefined;
      try {
        while (!existsSync(sock) || (withDest && !existsSync(destSock))) await new Promise((r) => setTimeout(r, 20));
        const uri = `nbd+unix:///?socket=${sock}`;
        const destUri = withDest ? `nbd+unix:///?socket=${destSock}` : undefined;
        const results = Object.fromEntries(modes.map((m) => [m, []]));
        for (let round = 0; round < runs; round++) {
          const order = modes.map((_, i) => modes[(i + round) % modes.length]);
          for (const m of order) {
            const r = timeRun(m, uri, destUri, passArgs, server.pid);
            results[m].push(r);
            process.stderr.write(`${size} round ${round + 1} ${m}: ${r.wall.toFixed(3)} s wall, ${r.cpu.toFixed(2)} s CPU, server ${r.serverCpu.toFixed(2)} s ${JSON.stringify(r.extra)}\n`);
          }
        }
        console.log(`\n### pattern ${size} -> ${withDest ? 'nbdkit memory' : 'nowhere'}, ${runs} runs, medians\n`);
        console.log('| mode | wall s | CPU s (user+sys) | server CPU s | max RSS MiB | worker connected after ms |');
        console.log('|---|---|---|---|---|---|');
        for (const m of modes) {
          const rs = results[m];
          const conn = rs.flatMap((r) => r.extra.workerConnectedMs ?? []);
          console.log(
            `| ${MODE_NAMES[m]} | ${median(rs.map((r) => r.wall)).toFixed(3)} | ${median(rs.map((r) => r.cpu)).toFixed(2)} | ${median(rs.map((r) => r.serverCpu)).toFixed(2)} | ${median(rs.map((r) => r.rssMiB)).toFixed(0)} | ${conn.length ? median(conn).toFixed(0) : '-'} |`,
          );
        }
      } finally {
        for (const s of [server, destServer]) {
          if (!s) continue;
          s.kill('SIGTERM');
          await new Promise((r) => s.once('exit', r));
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) await workerMain();
else if (option('role')) await child(option('role'));
else await driver();
