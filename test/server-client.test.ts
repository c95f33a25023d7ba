// Our client against our server, for every option and command, with extended headers on and
// off (nothing else here speaks extended headers). Bytes are checked against what was written.
import { createHash } from 'node:crypto';
import { Duplex, PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { connect, type NbdClient } from '../src/client/index.js';
import { MemoryBackend, SparseRandomBackend, fillPattern } from '../src/server/index.js';
import { embeddedStarter } from './helpers/embedded.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

async function client(uri: string, opts: Parameters<typeof connect>[1] = {}): Promise<NbdClient> {
  const c = await connect(uri, opts);
  cleanups.push(() => c.close().catch(() => {}));
  return c;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('our client against our server', () => {
  for (const extended of [true, false]) {
    it(`every command, ${extended ? 'extended headers' : 'structured replies'}`, async () => {
      const size = 6 * 1024 ** 3;
      const mem = new MemoryBackend(size);
      const s = await serve({ backend: mem });
      const c = await client(s.uri, { requestExtendedHeaders: extended });
      expect(c.connection.extendedHeaders).toBe(extended);
      expect(c.connection.structuredReplies).toBe(true);
      expect(c.connection.metaContexts).toEqual(['base:allocation']);
      expect(c.export.size).toBe(size);
      expect(c.export.canMultiConn).toBe(true);

      // Many writes in flight at once, above and below 4 GiB, then read back.
      const chunk = 256 * 1024;
      const offsets = [0, chunk, 3 * chunk, 4 * 1024 ** 3 + 8192, 5 * 1024 ** 3];
      const blobs = offsets.map((o, i) => Buffer.alloc(chunk, i + 1));
      await Promise.all(offsets.map((o, i) => c.pwrite(blobs[i]!, o, { fua: i === 0 })));
      await c.flush();
      const back = await Promise.all(offsets.map(async (o) => {
        const b = Buffer.alloc(chunk);
        await c.pread(b, o);
        return b;
      }));
      back.forEach((b, i) => expect(sha(b)).toBe(sha(blobs[i]!)));

      // A read across data and hole, fragmented and with DF.
      const across = Buffer.alloc(2 * chunk, 0xff);
      await c.pread(across, chunk);
      expect(sha(across)).toBe(sha(Buffer.concat([blobs[1]!, Buffer.alloc(chunk)])));
      const df = Buffer.alloc(2 * chunk, 0xff);
      await c.pread(df, chunk, { df: true });
      expect(df.equals(across)).toBe(true);

      // Block status: data where written, hole+zero elsewhere; REQ_ONE gives one extent.
      const bs = (await c.blockStatus(4 * chunk, 0)).get('base:allocation')!;
      expect(bs).toEqual([
        { length: 2 * chunk, flags: 0 }, { length: chunk, flags: 3 }, { length: chunk, flags: 0 },
      ]);
      const one = (await c.blockStatus(4 * chunk, 0, { reqOne: true })).get('base:allocation')!;
      expect(one).toEqual([{ length: 2 * chunk, flags: 0 }]);

      // Trim and zero free pages; zero with NO_HOLE and FAST_ZERO succeed on memory.
      await c.trim(chunk, 0);
      await c.zero(chunk, chunk, { noHole: true });
      await c.zero(chunk, 3 * chunk, { fastZero: true });
      const z = Buffer.alloc(4 * chunk, 1);
      await c.pread(z, 0);
      expect(z.every((x) => x === 0)).toBe(true);
      await c.cache(chunk, 0);
      if (extended) {
        // 64-bit effect lengths: zero everything above 4 GiB in one request.
        await c.zero(2 * 1024 ** 3, 4 * 1024 ** 3);
        const bs64 = (await c.blockStatus(size, 0)).get('base:allocation')!;
        expect(bs64.reduce((a, e) => a + e.length, 0)).toBe(size);
        expect(bs64.every((e) => e.flags === 3)).toBe(true);
        expect(mem.allocatedBytes).toBe(0);
      }
      // Errors come back as NbdError with the server's message.
      await expect(c.pread(Buffer.alloc(16), size - 8)).rejects.toMatchObject({ code: 'EINVAL' });
      await c.disconnect();
    });
  }

  it('hundreds of overlapping random writes and reads stay consistent with a shadow copy', async () => {
    const size = 4 * 1024 * 1024;
    const s = await serve({ backend: ['memory', '4M'] });
    const c = await client(s.uri, { maxInFlight: 32 });
    const shadow = Buffer.alloc(size);
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    // Writes to disjoint 64 KiB slots per round so completion order cannot matter.
    for (let round = 0; round < 4; round++) {
      const ops: Promise<void>[] = [];
      for (let slot = 0; slot < 64; slot++) {
        const off = slot * 65536 + rnd(32768);
        const len = 1 + rnd(32767);
        const data = Buffer.alloc(len, (round * 64 + slot) & 0xff);
        data.copy(shadow, off);
        ops.push(slot % 5 === 0 ? c.zero(len, off).then(() => { shadow.fill(0, off, off + len); }) : c.pwrite(data, off));
      }
      // zero() updates the shadow only after it completes: no other op touches that slot.
      await Promise.all(ops);
    }
    const back = Buffer.alloc(size);
    await Promise.all(Array.from({ length: 16 }, (_, i) => c.pread(back.subarray(i * 262144, (i + 1) * 262144), i * 262144)));
    expect(sha(back)).toBe(sha(shadow));
  });

  it('option mode: list, info, meta contexts, structured replies, extended headers, go', async () => {
    const s = await serve({
      exports: {
        one: { backend: new MemoryBackend(1 << 20), description: 'first' },
        two: { backend: ['pattern', '2M'], description: 'second' },
      },
    });
    const c = await client(s.uri, { optMode: true });
    expect(await c.optList()).toEqual([{ name: 'one', description: 'first' }, { name: 'two', description: 'second' }]);
    const info = await c.optInfo('two');
    expect(info.size).toBe(2 * 1024 * 1024);
    expect(info.readOnly).toBe(true);
    expect(info.description).toBe('second');
    expect(info.blockSizeFromServer).toBe(true);
    await expect(c.optInfo('three')).rejects.toBeTruthy();
    expect(await c.optExtendedHeaders()).toBe(true);
    expect(await c.optListMetaContext(['base:'], 'two')).toEqual(['base:allocation']);
    expect(await c.optSetMetaContext(['base:allocation'], 'two')).toEqual(['base:allocation']);
    await c.optGo('two');
    const buf = Buffer.alloc(4096);
    await c.pread(buf, 1024 * 1024);
    const want = Buffer.alloc(4096);
    fillPattern(want, 1024 * 1024);
    expect(buf.equals(want)).toBe(true);
    expect((await c.blockStatus(4096, 0)).get('base:allocation')).toEqual([{ length: 4096, flags: 0 }]);
    await expect(c.pwrite(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('sparse-random through the client: block status and reads agree, holes read as zero', async () => {
    const sr = new SparseRandomBackend(256 * 1024 * 1024, { seed: 3, percent: 5 });
    const s = await serve({ backend: sr });
    const c = await client(s.uri);
    const extents = (await c.blockStatus(32 * 1024 * 1024, 0)).get('base:allocation')!;
    let pos = 0;
    let dataSeen = 0;
    for (const e of extents.slice(0, 40)) {
      const len = Math.min(e.length, 1024 * 1024);
      const b = Buffer.alloc(len, 0xee);
      await c.pread(b, pos);
      if (e.flags & 2) expect(b.every((x) => x === 0)).toBe(true);
      else {
        expect(b.some((x) => x !== 0)).toBe(true);
        dataSeen++;
      }
      pos += e.length;
    }
    expect(dataSeen).toBeGreaterThan(0);
    // Same seed, same bytes: a second server serves an identical disk.
    const s2 = await serve({ backend: ['sparse-random', '256M', 'seed=3', 'percent=5'] });
    const c2 = await client(s2.uri);
    const a = Buffer.alloc(8 * 1024 * 1024);
    const b = Buffer.alloc(8 * 1024 * 1024);
    await c.pread(a, 0);
    await c2.pread(b, 0);
    expect(sha(a)).toBe(sha(b));
  });

  it('multi-conn: writes on one connection are visible on another after flush', async () => {
    const s = await serve({ backend: ['memory', '16M'] });
    const [a, b] = await Promise.all([client(s.uri), client(s.uri)]);
    await a.pwrite(Buffer.alloc(65536, 7), 65536);
    await a.flush();
    const r = Buffer.alloc(65536);
    await b.pread(r, 65536);
    expect(r.every((x) => x === 7)).toBe(true);
    expect(s.connections).toBe(2);
  });

  it('without structured replies the client still reads and writes (simple replies)', async () => {
    const s = await serve({ backend: ['memory', '1M'], structuredReplies: false });
    const c = await client(s.uri);
    expect(c.connection.structuredReplies).toBe(false);
    expect(c.connection.extendedHeaders).toBe(false);
    await c.pwrite(Buffer.from('hello'), 100);
    const r = Buffer.alloc(5);
    await c.pread(r, 100);
    expect(r.toString()).toBe('hello');
  });

  it('a session over a plain in-memory Duplex (no socket at all) via serve()', async () => {
    const s = await serve({ backend: ['memory', '1M'] });
    const toServer = new PassThrough();
    const toClient = new PassThrough();
    const served = s.serve(Duplex.from({ readable: toServer, writable: toClient }));
    const c = await connect({ socket: Duplex.from({ readable: toClient, writable: toServer }) });
    expect(c.connection.extendedHeaders).toBe(true);
    await c.pwrite(Buffer.from('duplex'), 4096);
    const r = Buffer.alloc(6);
    await c.pread(r, 4096);
    expect(r.toString()).toBe('duplex');
    await c.disconnect();
    await served;
    expect(s.connections).toBe(0);
  });

  it('oldstyle server', async () => {
    const s = await serve({ backend: ['memory', '1M'], oldstyle: true });
    const c = await client(s.uri);
    expect(c.connection.protocol).toBe('oldstyle');
    await c.pwrite(Buffer.from('old'), 0);
    const r = Buffer.alloc(3);
    await c.pread(r, 0);
    expect(r.toString()).toBe('old');
  });
});
