// Interop with nbdkit: plugins memory, data, pattern, sparse-random, null; oldstyle; --no-sr;
// filters error, delay, blocksize-policy, exportname. Each test starts its own server.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinary } from './helpers/binaries.js';
import { teardownAfterEach } from './helpers/teardown.js';

const have = requireBinary('nbdkit');
const { servers, clients, open } = teardownAfterEach<RunningServer>();

async function serve(args: string[], exportName?: string): Promise<RunningServer> {
  const s = await startNbdkit(args, exportName !== undefined ? { exportName } : {});
  servers.push(s);
  return s;
}

function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** nbdkit pattern plugin: each 8-byte word holds its own offset, big-endian. */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 8) b.writeBigUInt64BE(BigInt(offset + i), i);
  return b;
}

describe.skipIf(!have)('nbdkit interop', () => {
  it('memory: write, read back, zero, trim, flush, block status', async () => {
    const s = await serve(['memory', '4M']);
    const c = await open(s.uri);
    expect(c.state).toBe('ready');
    expect(c.export.size).toBe(4 << 20);
    expect(c.connection).toMatchObject({ protocol: 'newstyle-fixed', structuredReplies: true, extendedHeaders: false, tls: false });
    expect(c.connection.metaContexts).toEqual(['base:allocation']);
    expect(c.connection.uri).toBe(`nbd+unix:///?socket=${s.socket}`);
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    await c.pwrite(data, 1 << 20);
    const back = Buffer.alloc(1 << 20, 0xaa);
    await c.pread(back, 1 << 20);
    expect(sha(back)).toBe(sha(data));
    // many in flight at once, replies in any order
    const parts = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const b = Buffer.alloc(65536);
      await c.pread(b, (1 << 20) + i * 65536);
      return b;
    }));
    expect(sha(Buffer.concat(parts))).toBe(sha(data));
    await c.zero(65536, 1 << 20);
    await c.trim(65536, (1 << 20) + 65536);
    await c.flush();
    const z = Buffer.alloc(131072, 1);
    await c.pread(z, 1 << 20);
    expect(z.every((x) => x === 0)).toBe(true);
    const bs = await c.blockStatus(4 << 20, 0);
    const ext = bs.get('base:allocation')!;
    expect(ext.reduce((a, e) => a + e.length, 0)).toBe(4 << 20);
    // [0, 1M) was never written and [1M, 1M+128K) was zeroed/trimmed: one hole; then data.
    expect(ext[0]).toEqual({ length: (1 << 20) + 131072, flags: 3 });
    expect(ext[1]!.flags).toBe(0);
  });

  it('data plugin: exact bytes, holes read as zeroes', async () => {
    const s = await serve(['data', '1 2 3 @4096 9 @8191 0xff', 'size=16384']);
    const c = await open(s.uri);
    const b = Buffer.alloc(16384, 0x55);
    await c.pread(b, 0);
    const want = Buffer.alloc(16384);
    want[0] = 1; want[1] = 2; want[2] = 3; want[4096] = 9; want[8191] = 0xff;
    expect(b.equals(want)).toBe(true);
  });

  it('pattern plugin: large reads with many commands in flight and a small in-flight limit', async () => {
    const s = await serve(['pattern', '64M']);
    const c = await open(s.uri, { maxInFlight: 4 });
    const size = 256 * 1024;
    const reads = Array.from({ length: 32 }, async (_, i) => {
      const b = Buffer.alloc(size);
      await c.pread(b, i * size * 2);
      expect(b.equals(pattern(i * size * 2, size))).toBe(true);
    });
    expect(c.inFlight).toBe(32);
    await Promise.all(reads);
    expect(c.inFlight).toBe(0);
    expect(c.export.readOnly).toBe(true);
  });

  it('sparse-random: block status agrees with data', async () => {
    const s = await serve(['sparse-random', '16M', 'percent=50', 'runlength=65536']);
    const c = await open(s.uri);
    const bs = (await c.blockStatus(16 << 20, 0)).get('base:allocation')!;
    let off = 0;
    let dataExtents = 0;
    const buf = Buffer.alloc(16 << 20);
    await Promise.all(Array.from({ length: 16 }, (_, i) => c.pread(buf.subarray(i << 20, (i + 1) << 20), i << 20)));
    for (const e of bs) {
      const len = Math.min(e.length, (16 << 20) - off);
      if (e.flags & 2) expect(buf.subarray(off, off + len).every((x) => x === 0)).toBe(true);
      else dataExtents++;
      off += len;
    }
    expect(off).toBe(16 << 20);
    expect(dataExtents).toBeGreaterThan(0);
  });

  it('null plugin: reads zeroes; writes are discarded', async () => {
    const s = await serve(['null', '1M']);
    const c = await open(s.uri);
    await c.pwrite(Buffer.alloc(4096, 1), 0);
    const b = Buffer.alloc(4096, 9);
    await c.pread(b, 0);
    expect(b.every((x) => x === 0)).toBe(true);
  });

  it('oldstyle (-o): simple replies, no options', async () => {
    const s = await serve(['-o', 'pattern', '1M']);
    const c = await open(s.uri);
    expect(c.connection.protocol).toBe('oldstyle');
    expect(c.connection.structuredReplies).toBe(false);
    const b = Buffer.alloc(8192);
    await c.pread(b, 65536);
    expect(b.equals(pattern(65536, 8192))).toBe(true);
    await expect(c.blockStatus(4096, 0)).rejects.toMatchObject({ code: 'ENOTSUP' });
  });

  it('--no-sr: simple replies over fixed newstyle', async () => {
    const s = await serve(['--no-sr', 'memory', '1M']);
    const c = await open(s.uri);
    expect(c.connection).toMatchObject({ protocol: 'newstyle-fixed', structuredReplies: false, metaContexts: [] });
    await c.pwrite(Buffer.alloc(512, 5), 512);
    const b = Buffer.alloc(1024);
    await c.pread(b, 0);
    expect(b.subarray(0, 512).every((x) => x === 0) && b.subarray(512).every((x) => x === 5)).toBe(true);
  });

  it('error filter: server errors reach the caller as NbdError with a code', async () => {
    const s = await serve(['--filter=error', 'memory', '1M', 'error=ENOSPC', 'error-pwrite-rate=1', 'error-pread-rate=0']);
    const c = await open(s.uri);
    await expect(c.pwrite(Buffer.alloc(4096), 0)).rejects.toMatchObject({ name: 'NbdError', code: 'ENOSPC' });
    // the connection stays usable after a command error
    await c.pread(Buffer.alloc(4096), 0);
  });

  it('error filter on reads with --no-sr (simple error reply)', async () => {
    const s = await serve(['--no-sr', '--filter=error', 'memory', '1M', 'error=EIO', 'error-pread-rate=1']);
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'EIO' });
    await c.pwrite(Buffer.alloc(4096), 0);
  });

  it('delay filter: replies arrive out of order and still match by cookie', async () => {
    const s = await serve(['--filter=delay', 'pattern', '1M', 'rdelay=200ms']);
    const c = await open(s.uri);
    const b1 = Buffer.alloc(4096);
    const b2 = Buffer.alloc(4096);
    await Promise.all([c.pread(b1, 0), c.pread(b2, 8192)]);
    expect(b1.equals(pattern(0, 4096)) && b2.equals(pattern(8192, 4096))).toBe(true);
  });

  it('blocksize-policy: block sizes reported; strict mode rejects before sending', async () => {
    const s = await serve(['--filter=blocksize-policy', 'memory', '1M',
      'blocksize-minimum=512', 'blocksize-preferred=4096', 'blocksize-maximum=65536', 'blocksize-error-policy=error']);
    const c = await open(s.uri);
    expect(c.export).toMatchObject({ blockSizeMinimum: 512, blockSizePreferred: 4096, blockSizeMaximum: 65536, blockSizeFromServer: true });
    await expect(c.pread(Buffer.alloc(512), 100)).rejects.toMatchObject({ code: 'EINVAL', message: /minimum block size/ });
    await expect(c.pread(Buffer.alloc(100), 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(c.pread(Buffer.alloc(131072), 0)).rejects.toMatchObject({ code: 'ERANGE' });
    await expect(c.pwrite(Buffer.alloc(0), 0)).rejects.toMatchObject({ code: 'EINVAL', message: /zero-length/ });
    await expect(c.pread(Buffer.alloc(512), 1 << 20)).rejects.toMatchObject({ code: 'EINVAL', message: /beyond the end/ });
    await c.pread(Buffer.alloc(65536), 0);
  });

  it('read-only export (-r): writes fail with EPERM before sending', async () => {
    const s = await serve(['-r', 'memory', '1M']);
    const c = await open(s.uri);
    expect(c.export.readOnly).toBe(true);
    await expect(c.pwrite(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(c.zero(512, 0)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(c.trim(512, 0)).rejects.toMatchObject({ code: 'EPERM' });
  });

  it('exportname filter: option mode lists exports and gets INFO for each', async () => {
    const s = await serve(['--filter=exportname', 'memory', '1M', 'exportname=a', 'exportname=b', 'exportname-list=explicit',
      'exportdesc=fixed:the-desc']);
    const c = await open(s.uri, { optMode: true });
    expect(c.state).toBe('option-mode');
    const list = await c.optList();
    expect(list.map((e) => e.name)).toEqual(['a', 'b']);
    const info = await c.optInfo('a');
    expect(info.size).toBe(1 << 20);
    expect(info.description).toBe('the-desc');
    expect(await c.optListMetaContext(['base:'])).toEqual(['base:allocation']);
    await c.optGo('b');
    expect(c.state).toBe('ready');
    expect(c.export.exportName).toBe('b');
    await c.pread(Buffer.alloc(512), 0);
  });

  it('option mode without automatic structured replies: the caller asks for them', async () => {
    const s = await serve(['memory', '1M']);
    const c = await open(s.uri, { optMode: true, requestStructuredReplies: false, requestExtendedHeaders: false });
    expect(c.connection.structuredReplies).toBe(false);
    expect(await c.optExtendedHeaders()).toBe(false);
    expect(await c.optStructuredReply()).toBe(true);
    expect(await c.optSetMetaContext(['base:allocation'])).toEqual(['base:allocation']);
    await c.optGo();
    expect(c.connection).toMatchObject({ structuredReplies: true, metaContexts: ['base:allocation'] });
    expect((await c.blockStatus(1 << 20, 0)).get('base:allocation')).toEqual([{ length: 1 << 20, flags: 3 }]);
  });

  it('an existing socket as the target', async () => {
    const s = await serve(['memory', '1M']);
    const net = await import('node:net');
    const sock = net.connect({ path: s.socket });
    await new Promise((r) => sock.once('connect', r));
    const c = await connect({ socket: sock });
    clients.push(c);
    expect(c.export.size).toBe(1 << 20);
    expect(c.connection.uri).toBeUndefined();
    await c.pread(Buffer.alloc(512), 0);
    await c.close();
    expect(sock.destroyed).toBe(true);
  });

  it('optAbort ends option mode and closes', async () => {
    const s = await serve(['memory', '1M']);
    const c = await open(s.uri, { optMode: true });
    await c.optAbort();
    expect(c.state).toBe('closed');
    await expect(c.pread(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });

  it('cache and fua and fast zero are checked against the flags', async () => {
    const s = await serve(['memory', '1M']);
    const c = await open(s.uri);
    if (c.export.canCache) await c.cache(4096, 0);
    if (c.export.canFua) await c.pwrite(Buffer.alloc(512, 1), 0, { fua: true });
    if (c.export.canFastZero) await c.zero(4096, 0, { fastZero: true, noHole: true });
    const b = Buffer.alloc(512, 3);
    await c.pread(b, 0, { df: c.export.canDf });
    expect(b.every((x) => x === 0)).toBe(true);
  });

  it('closed connection: commands after close fail with ESHUTDOWN', async () => {
    const s = await serve(['memory', '1M']);
    const c = await open(s.uri);
    const p = c.pread(Buffer.alloc(4096), 0);
    await c.close();
    await p; // close waits for commands in flight
    expect(c.state).toBe('closed');
    await expect(c.flush()).rejects.toMatchObject({ code: 'ESHUTDOWN' });
  });
});
