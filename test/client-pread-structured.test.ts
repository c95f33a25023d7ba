// preadStructured against real servers: qemu-nbd answers a sparse raw file with hole chunks,
// nbdkit with data chunks (and, without structured replies, one simple reply), our nbdserve
// with extended headers. Each checks the chunks tile the read exactly, that the bytes equal a
// plain pread's, that DF gets one chunk, and that a failing callback fails only that read.
import { openSync, closeSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MultiConn, connect, type NbdClient, type ReadChunk } from '../src/index.js';
import { requireBinary } from './helpers/binaries.js';
import { embeddedStarter } from './helpers/embedded.js';
import { startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';

const haveQemu = requireBinary('qemu-nbd');
const haveNbdkit = requireBinary('nbdkit');
const teardown = teardownAfterEach<RunningServer>();
const serve = embeddedStarter(teardown);
const K = 1024;
const M = 1024 * K;

async function open(uri: string, options: Parameters<typeof connect>[1] = {}): Promise<NbdClient> {
  const c = (await connect(uri, options)) as NbdClient;
  teardown.clients.push(c);
  return c;
}

/** Reads [offset, +length) structured; the chunks in arrival order and the buffer. */
async function structured(c: NbdClient, offset: number, length: number, df = false): Promise<{ chunks: ReadChunk[]; buf: Buffer }> {
  const buf = Buffer.alloc(length, 0xee);
  const chunks: ReadChunk[] = [];
  await c.preadStructured(buf, offset, (k) => {
    // The view is the buffer's own bytes at the chunk's place.
    expect(k.data.buffer).toBe(buf.buffer);
    expect(k.data.byteOffset - buf.byteOffset).toBe(k.offset - offset);
    chunks.push({ ...k });
  }, df ? { df } : undefined);
  return { chunks, buf };
}

/** The chunks, sorted, cover [offset, +length) exactly once; hole chunks read as zeroes. */
function expectTiling(chunks: ReadChunk[], offset: number, length: number): void {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset);
  let at = offset;
  for (const k of sorted) {
    expect(k.offset).toBe(at);
    expect(k.length).toBeGreaterThan(0);
    if (k.status === 'hole') expect(k.data.every((b) => b === 0)).toBe(true);
    at += k.length;
  }
  expect(at).toBe(offset + length);
}

async function plain(c: NbdClient, offset: number, length: number): Promise<Buffer> {
  const b = Buffer.alloc(length);
  await c.pread(b, offset);
  return b;
}

describe.skipIf(!haveQemu)('preadStructured: qemu-nbd (a sparse raw file)', () => {
  it('holes arrive as hole chunks, data as data chunks, equal to pread; DF gets one data chunk', async () => {
    const dir = teardown.tempDir('pread-structured-');
    const img = join(dir, 'sparse.raw');
    const fd = openSync(img, 'w');
    ftruncateSync(fd, 4 * M);
    writeSync(fd, Buffer.alloc(64 * K, 0x55), 0, 64 * K, 0);
    writeSync(fd, Buffer.alloc(64 * K, 0x66), 0, 64 * K, 2 * M);
    closeSync(fd);
    const s = await startQemuNbd(['-f', 'raw', '-r', img], { dir });
    teardown.servers.push(s);
    const c = await open(s.uri);
    const { chunks, buf } = await structured(c, 0, 4 * M);
    expectTiling(chunks, 0, 4 * M);
    expect(buf.equals(await plain(c, 0, 4 * M))).toBe(true);
    // The two written 64 KiB blocks come as data, everything else as holes, in order.
    expect(chunks.map((k) => [k.status, k.offset, k.length])).toEqual([
      ['data', 0, 64 * K], ['hole', 64 * K, 2 * M - 64 * K], ['data', 2 * M, 64 * K], ['hole', 2 * M + 64 * K, 2 * M - 64 * K],
    ]);
    expect(chunks.every((k) => k.error === undefined)).toBe(true);

    const df = await structured(c, 0, 4 * M, true);
    expect(df.chunks.map((k) => [k.status, k.offset, k.length])).toEqual([['data', 0, 4 * M]]);
    expect(df.buf.equals(buf)).toBe(true);
  });
});

describe.skipIf(!haveNbdkit)('preadStructured: nbdkit', () => {
  it('structured replies: data chunks tiling the read; simple replies: one data chunk of the whole read', async () => {
    const s = await startNbdkit(['pattern', '8M']);
    teardown.servers.push(s);
    const c = await open(s.uri);
    expect(c.connection.structuredReplies).toBe(true);
    const a = await structured(c, 12345, 3 * M);
    expectTiling(a.chunks, 12345, 3 * M);
    expect(a.chunks.every((k) => k.status === 'data')).toBe(true);
    expect(a.buf.equals(await plain(c, 12345, 3 * M))).toBe(true);

    const simple = await open(s.uri, { requestStructuredReplies: false, requestExtendedHeaders: false, metaContexts: [] });
    expect(simple.connection.structuredReplies).toBe(false);
    const b = await structured(simple, 12345, 3 * M);
    expect(b.chunks.map((k) => [k.status, k.offset, k.length])).toEqual([['data', 12345, 3 * M]]);
    expect(b.buf.equals(a.buf)).toBe(true);
  });

  it('the server\'s read error fails the read; a failing callback fails only its read', async () => {
    const s = await startNbdkit(['--filter=error', 'pattern', '1M', 'error-pread=EIO', 'error-pread-rate=1']);
    teardown.servers.push(s);
    const c = await open(s.uri);
    const seen: string[] = [];
    await expect(c.preadStructured(Buffer.alloc(4096), 0, (k) => void seen.push(k.status))).rejects.toMatchObject({ code: 'EIO' });
    // nbdkit reports a read error without an offset: no chunk reaches the callback.
    expect(seen).toEqual([]);
    expect(c.state).toBe('ready');

    const t = await startNbdkit(['pattern', '1M']);
    teardown.servers.push(t);
    const d = await open(t.uri);
    await expect(d.preadStructured(Buffer.alloc(4096), 0, () => {
      throw new Error('refused');
    })).rejects.toMatchObject({ code: 'EPROTO', message: 'pread: chunk callback failed: refused' });
    expect(d.state).toBe('ready');
    expect((await plain(d, 8, 8)).readBigUInt64BE(0)).toBe(8n);
  });
});

describe('preadStructured: nbdserve with extended headers', () => {
  it('hole and data chunks with extended headers, DF as one chunk, an async callback awaited', async () => {
    const s = await serve({ backend: ['memory', '8M'] });
    const c = await open(s.uri);
    expect(c.connection.extendedHeaders).toBe(true);
    await c.pwrite(Buffer.alloc(64 * K, 0x77), 1 * M);
    const { chunks, buf } = await structured(c, 0, 2 * M);
    expect(chunks.map((k) => [k.status, k.offset, k.length])).toEqual([
      ['hole', 0, 1 * M], ['data', 1 * M, 64 * K], ['hole', 1 * M + 64 * K, M - 64 * K],
    ]);
    expect(buf.equals(await plain(c, 0, 2 * M))).toBe(true);
    const df = await structured(c, 0, 2 * M, true);
    expect(df.chunks.map((k) => [k.status, k.offset, k.length])).toEqual([['data', 0, 2 * M]]);

    // A callback that writes each chunk somewhere slow: the read resolves after the last write.
    const written: number[] = [];
    await c.preadStructured(Buffer.alloc(2 * M), 0, async (k) => {
      await new Promise((r) => setTimeout(r, 20));
      written.push(k.offset);
    });
    expect(written).toEqual([0, 1 * M, 1 * M + 64 * K]);
  });
});

describe('preadStructured and blockStatusFilter through MultiConn and a reconnecting client', () => {
  it('pass through to the connection and give the same chunks and extents', async () => {
    const s = await serve({ backend: ['memory', '4M'] });
    const m = await MultiConn.open(s.uri, { connections: 2 });
    teardown.clients.push(m);
    expect(m.connections).toBe(2);
    await m.pwrite(Buffer.alloc(64 * K, 9), M, undefined, 0);
    const seen: string[] = [];
    await m.preadStructured(Buffer.alloc(2 * M), 0, (k) => void seen.push(`${k.status}@${k.offset}+${k.length}`), undefined, 1);
    expect(seen).toEqual([`hole@0+${M}`, `data@${M}+${64 * K}`, `hole@${M + 64 * K}+${M - 64 * K}`]);
    const viaMulti = await m.blockStatusFilter(4 * M, 0, ['base:allocation'], undefined, 1);

    const r = await connect(s.uri, { retries: 2 });
    teardown.clients.push(r);
    const again: string[] = [];
    await r.preadStructured(Buffer.alloc(2 * M), 0, (k) => void again.push(`${k.status}@${k.offset}+${k.length}`));
    expect(again).toEqual(seen);
    expect(await r.blockStatusFilter(4 * M, 0, ['base:allocation'])).toEqual(viaMulti);
  });
});
