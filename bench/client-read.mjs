#!/usr/bin/env node
// Reads a whole nbdkit pattern export with our client (N x REQ bytes in flight on one Unix
// socket connection) and with libnbd's `nbdcopy -C 1 <uri> null:`; prints both wall times and
// the ratio ours/theirs. Needs `npx tsc -p tsconfig.json` first (imports dist/).
// Usage: node bench/client-read.mjs [size=4G] [requests=64] [request-size=262144]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../dist/client/index.js';

const size = process.argv[2] ?? '4G';
const depth = Number(process.argv[3] ?? 64);
const reqSize = Number(process.argv[4] ?? 262144);

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
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
