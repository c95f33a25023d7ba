// Traffic counters (issue 18 item 1): the client's own counts equal the bytes a counting proxy
// saw pass in each direction, for nbdkit and qemu-nbd, handshake included; chunks follow
// the reply shapes; MultiConn sums its connections; a reconnecting client keeps counting.
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MultiConn, connect, sumStats, type NbdClient } from '../src/client/index.js';
import { StatsCounter } from '../src/client/stats.js';
import { writeFileSync } from 'node:fs';
import { requireBinary } from './helpers/binaries.js';
import { startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { RestartableServer } from './helpers/restartable-server.js';
import { teardownAfterEach } from './helpers/teardown.js';

const haveNbdkit = requireBinary('nbdkit');
const haveQemu = requireBinary('qemu-nbd');
const { servers, clients, push, tempDir } = teardownAfterEach<RunningServer>();

interface CountingProxy {
  uri: string;
  /** Bytes client -> server and server -> client, over every connection so far. */
  up: number;
  down: number;
}

/** A Unix socket that forwards to `target` and counts what passes. */
async function countingProxy(target: string): Promise<CountingProxy> {
  const socket = join(tempDir('nbd-stats-'), 'proxy.sock');
  const counts: CountingProxy = { uri: `nbd+unix:///?socket=${socket}`, up: 0, down: 0 };
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    open.add(client).add(upstream);
    client.on('data', (d: Buffer) => { counts.up += d.length; upstream.write(d); });
    upstream.on('data', (d: Buffer) => { counts.down += d.length; client.write(d); });
    const close = (): void => { client.destroy(); upstream.destroy(); };
    for (const s of [client, upstream]) { s.on('error', close); s.on('close', close); }
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  push(() => new Promise<void>((resolve) => {
    for (const s of open) s.destroy();
    server.close(() => resolve());
  }));
  return counts;
}

/** Lets bytes written on one side of the proxy reach the other side. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

async function workload(c: NbdClient): Promise<void> {
  const data = Buffer.alloc(256 * 1024, 7);
  await c.pwrite(data, 65536);
  await Promise.all([c.pread(Buffer.alloc(65536), 0), c.pread(Buffer.alloc(200_000), 65536)]);
  await c.zero(65536, 0);
  await c.flush();
  await c.blockStatus(1 << 20, 0);
}

describe('StatsCounter', () => {
  it('snapshots do not move; sumStats adds field by field', () => {
    const s = new StatsCounter();
    s.bytesSent = 10;
    s.chunksReceived = 2;
    const snap = s.snapshot();
    s.bytesSent = 99;
    expect(snap).toEqual({ bytesSent: 10, chunksSent: 0, bytesReceived: 0, chunksReceived: 2 });
    expect(sumStats([snap, { bytesSent: 1, chunksSent: 2, bytesReceived: 3, chunksReceived: 4 }]))
      .toEqual({ bytesSent: 11, chunksSent: 2, bytesReceived: 3, chunksReceived: 6 });
    expect(sumStats([])).toEqual({ bytesSent: 0, chunksSent: 0, bytesReceived: 0, chunksReceived: 0 });
  });
});

describe.skipIf(!haveNbdkit)('stats against nbdkit', () => {
  it('bytes equal what a proxy saw, handshake included; one chunk per request and per reply chunk', async () => {
    const s = await startNbdkit(['memory', '1M']);
    servers.push(s);
    const proxy = await countingProxy(s.socket!);
    const c = await connect(proxy.uri);
    clients.push(c);
    await settle();
    const hs = c.stats;
    expect(hs.bytesSent).toBe(proxy.up);
    expect(hs.bytesReceived).toBe(proxy.down);
    expect(hs.chunksSent).toBeGreaterThanOrEqual(3); // client flags, options, GO
    expect(hs.chunksReceived).toBeGreaterThanOrEqual(3); // greeting, option replies
    await workload(c);
    await settle();
    const st = c.stats;
    expect(st.bytesSent).toBe(proxy.up);
    expect(st.bytesReceived).toBe(proxy.down);
    // pwrite, 2 preads, zero, flush, block status: 6 requests, 28-byte headers + the payload.
    expect(st.chunksSent - hs.chunksSent).toBe(6);
    expect(st.bytesSent - hs.bytesSent).toBe(6 * 28 + 256 * 1024);
    // At least one chunk per reply; reads carry their data.
    expect(st.chunksReceived - hs.chunksReceived).toBeGreaterThanOrEqual(6);
    expect(st.bytesReceived - hs.bytesReceived).toBeGreaterThan(65536 + 200_000);
  });

  it('MultiConn sums its connections', async () => {
    const s = await startNbdkit(['memory', '1M']);
    servers.push(s);
    const proxy = await countingProxy(s.socket!);
    const m = await MultiConn.open(proxy.uri, { connections: 3 });
    clients.push(m);
    expect(m.connections).toBe(3);
    for (let i = 0; i < 6; i++) await m.pread(Buffer.alloc(4096), i * 4096);
    await settle();
    const each = m.clients.map((c) => c.stats);
    expect(each.every((x) => x.chunksSent > 0)).toBe(true);
    expect(m.stats).toEqual(sumStats(each));
    expect(m.stats.bytesSent).toBe(proxy.up);
    expect(m.stats.bytesReceived).toBe(proxy.down);
  });

  it('a reconnecting client counts over every connection it opened', async () => {
    const server = new RestartableServer(join(tempDir('nbd-stats-r-'), 'sock'), ['memory', '1M']);
    await server.start();
    push(() => server.stop());
    const c = await connect(server.uri, { retries: 3, retryDelayMs: 10 });
    clients.push(c);
    await c.pread(Buffer.alloc(4096), 0);
    const before = c.stats;
    await server.restart();
    await c.pread(Buffer.alloc(4096), 0);
    expect(c.reconnections).toBe(1);
    const after = c.stats;
    // A second handshake plus the read again: the first connection's counts are kept.
    expect(after.bytesReceived).toBeGreaterThan(before.bytesReceived + 4096 + 100);
    expect(after.chunksSent).toBeGreaterThan(before.chunksSent + 2);
  });
});

describe.skipIf(!haveQemu)('stats against qemu-nbd', () => {
  it('bytes equal what a proxy saw , qemu-nbd reply shapes', async () => {
    const dir = tempDir('nbd-stats-q-');
    writeFileSync(join(dir, 'img'), Buffer.alloc(1 << 20));
    const s = await startQemuNbd(['-f', 'raw', join(dir, 'img')], { dir });
    servers.push(s);
    const proxy = await countingProxy(s.socket!);
    const c = await connect(proxy.uri);
    clients.push(c);
    await workload(c);
    await settle();
    expect(c.stats.bytesSent).toBe(proxy.up);
    expect(c.stats.bytesReceived).toBe(proxy.down);
  });
});
