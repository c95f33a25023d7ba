#!/usr/bin/env node
// Reads a whole nbdkit pattern export with our client (N x REQ bytes in flight on one Unix
// socket connection) and with libnbd's `nbdcopy -C 1 <uri> null:`; prints both wall times and
// the ratio ours/theirs. Needs `npm run build` first (imports the package, i.e. dist/).
// With --multi: also socket activation `[ nbdkit pattern SIZE ]` with 4 multi-conn connections
// against `nbdcopy -- [ nbdkit pattern SIZE ] null:` (libnbd's default, 4 connections).
// Usage: node bench/experiments/client-read.mjs [size=4G] [requests=64] [request-size=262144] [--multi]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, MultiConn } from 'nbd-toolkit';

const multi = process.argv.includes('--multi');
const args = process.argv.slice(2).filter((a) => a !== '--multi');
const size = args[0] ?? '4G';
const depth = Number(args[1] ?? 64);
const reqSize = Number(args[2] ?? 262144);

/** Reads the whole export with `depth` workers per connection, walking it in order. */
async function readAll(m) {
  const total = m.export.size;
  let next = 0;
  async function worker(conn) {
    const buf = Buffer.allocUnsafe(reqSize);
    while (next < total) {
      const off = next;
      const len = Math.min(reqSize, total - off);
      next += len;
      await m.pread(len === reqSize ? buf : buf.subarray(0, len), off, undefined, conn);
    }
  }
  await Promise.all(Array.from({ length: depth * m.connections }, (_, i) => worker(i % m.connections)));
}

const dir = mkdtempSync(join(tmpdir(), 'bench-client-'));
const sock = join(dir, 'sock');
const server = spawn('nbdkit', ['-f', '-U', sock, 'pattern', size], { stdio: 'inherit' });
try {
  while (!existsSync(sock)) await new Promise((r) => setTimeout(r, 20));
  const uri = `nbd+unix:///?socket=${sock}`;

  const t0 = process.hrtime.bigint();
  const c = await connect(uri, { maxInFlight: depth });
  const total = c.export.size;
  let next = 0;
  async function worker() {
    const buf = Buffer.allocUnsafe(reqSize);
    while (next < total) {
      const off = next;
      const len = Math.min(reqSize, total - off);
      next += len;
      await c.pread(len === reqSize ? buf : buf.subarray(0, len), off);
    }
  }
  await Promise.all(Array.from({ length: depth }, worker));
  await c.close();
  const ours = Number(process.hrtime.bigint() - t0) / 1e9;

  const t1 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/nbdcopy', ['-C', '1', uri, 'null:'], { stdio: 'inherit' });
  const theirs = Number(process.hrtime.bigint() - t1) / 1e9;
  if (r.status !== 0) throw new Error('nbdcopy failed');

  const gib = total / 2 ** 30;
  console.log(`ours (client pread, ${depth} x ${reqSize} B in flight): ${ours.toFixed(2)} s (${(gib / ours).toFixed(2)} GiB/s)`);
  console.log(`libnbd nbdcopy -C 1 ... null:               ${theirs.toFixed(2)} s (${(gib / theirs).toFixed(2)} GiB/s)`);
  console.log(`ratio ours/theirs: ${(ours / theirs).toFixed(2)}`);

  if (multi) {
    const t2 = process.hrtime.bigint();
    const m = await MultiConn.open({ activation: ['nbdkit', 'pattern', size] }, { connections: 4, maxInFlight: depth });
    await readAll(m);
    await m.close();
    const oursMulti = Number(process.hrtime.bigint() - t2) / 1e9;
    const t3 = process.hrtime.bigint();
    const r2 = spawnSync('/usr/bin/nbdcopy', ['--', '[', 'nbdkit', 'pattern', size, ']', 'null:'], { stdio: 'inherit' });
    const theirsMulti = Number(process.hrtime.bigint() - t3) / 1e9;
    if (r2.status !== 0) throw new Error('nbdcopy failed');
    console.log(`ours, [ nbdkit pattern ${size} ] x${m.connections} multi-conn: ${oursMulti.toFixed(2)} s`);
    console.log(`libnbd nbdcopy -- [ nbdkit pattern ${size} ] null:  ${theirsMulti.toFixed(2)} s`);
    console.log(`ratio ours/theirs (multi-conn): ${(oursMulti / theirsMulti).toFixed(2)}`);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
