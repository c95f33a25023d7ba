// The copier's sequential paths against in-memory endpoints: a random-access source read
// ahead (several connections, holes, odd sizes) into a stream written strictly in order, and
// a stream of unknown length into a random-access destination. Bytes are compared exactly.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { copyEndpoints as copy } from '../src/copy/copier.js';
import type { SourceExtent } from '../src/copy/endpoint.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from '../src/copy/options.js';
import { NbdError } from '../src/protocol/errors.js';
import { noise } from './helpers/files.js';
import { MemoryEndpoint } from './helpers/memory-endpoint.js';

const MiB = 1 << 20;
const opts = (o: Partial<CopyOptions> = {}): CopyOptions => ({ ...DEFAULT_COPY_OPTIONS, ...o });
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A random-access source (an NBD server, say) with holes, answering reads out of order. */
const diskSource = (name: string, data: Buffer, extents: SourceExtent[], maxConnections: number): MemoryEndpoint =>
  new MemoryEndpoint(name, data.length, data, { extents, maxConnections, local: false, canZero: false, timing: 'jitter' });
/** A pipe (stdout): takes writes strictly in order, one at a time. */
const pipeSink = (name = 'pipe'): MemoryEndpoint => new MemoryEndpoint(name, undefined, undefined, { stream: true, timing: 'jitter' });
/** stdin: hands out `data` strictly in order. */
const streamSource = (name: string, data: Buffer): MemoryEndpoint =>
  new MemoryEndpoint(name, undefined, data, { stream: true, timing: 'jitter' });
/** A random-access destination (NBD-like), one connection, without extents. */
const diskSink = (name: string, size: number | undefined, capacity: number): MemoryEndpoint =>
  new MemoryEndpoint(name, size, Buffer.alloc(capacity), { maxConnections: 1, local: false, timing: 'jitter' });

/** Odd size; data, a hole, data, a hole in the middle of a request, odd-sized data at the end. */
function holeyDisk(maxConnections: number): MemoryEndpoint {
  const size = 9 * MiB + 4097;
  const data = noise(size, 11);
  const extents: SourceExtent[] = [
    { offset: 0, length: 3 * MiB, zero: false },
    { offset: 3 * MiB, length: 2 * MiB, zero: true },
    { offset: 5 * MiB, length: 100_000, zero: false },
    { offset: 5 * MiB + 100_000, length: 3 * MiB, zero: true },
    { offset: 8 * MiB + 100_000, length: size - (8 * MiB + 100_000), zero: false },
  ];
  for (const e of extents) if (e.zero) data.fill(0, e.offset, e.offset + e.length);
  return diskSource('disk', data, extents, maxConnections);
}

describe('random-access source -> stream: reads ahead, writes in order', () => {
  // As libnbd's nbdcopy: a stream destination means one source connection, whatever the
  // source allows; the reads still run ahead on it.
  it.each([1, 4])('byte-exact with holes and an odd size, a source allowing %i connection(s)', async (conns) => {
    const src = holeyDisk(conns);
    const dst = pipeSink();
    const r = await copy(src, dst, opts({ connections: 4, requestSize: 64 * 1024 }));
    expect(r.bytes).toBe(src.size);
    expect(dst.outOfOrder).toBe(0);
    expect(dst.position).toBe(src.size);
    expect(sha(dst.bytes())).toBe(sha(src.data));
    expect(src.holeReads).toBe(0);
    expect(src.maxInFlight).toBeGreaterThan(1);
    expect(src.connsUsed.size).toBe(1);
    expect(r.connections).toBe(1);
  });

  it('never has more reads in flight than --requests x connections', async () => {
    const src = holeyDisk(2);
    const dst = pipeSink();
    await copy(src, dst, opts({ connections: 2, requests: 3, requestSize: 64 * 1024 }));
    expect(src.maxInFlight).toBeLessThanOrEqual(6);
    expect(sha(dst.bytes())).toBe(sha(src.data));
  });

  it('--synchronous: one read at a time, one connection', async () => {
    const src = holeyDisk(4);
    const dst = pipeSink();
    const r = await copy(src, dst, opts({ synchronous: true, requestSize: 64 * 1024 }));
    expect(r.lanesPerConnection).toBe(1);
    expect(r.connections).toBe(1);
    expect(src.maxInFlight).toBe(1);
    expect(sha(dst.bytes())).toBe(sha(src.data));
  });

  it('a read error stops the copy: rejects, nothing written past the failed request, no read left running', async () => {
    const src = holeyDisk(2);
    src.failReadAt = 2 * MiB + 5;
    const dst = pipeSink();
    await expect(copy(src, dst, opts({ connections: 2, requestSize: 64 * 1024 }))).rejects.toThrow(/read at 2097152: Input\/output error/);
    expect(dst.position).toBeLessThanOrEqual(2 * MiB);
    expect(dst.outOfOrder).toBe(0);
    expect(dst.bytes().equals(src.data.subarray(0, dst.position))).toBe(true);
    expect(src.inFlight).toBe(0);
  });

  it('a failing write stops the reads and rejects with that error', async () => {
    const src = holeyDisk(2);
    const dst = pipeSink();
    let writes = 0;
    dst.write = async () => {
      if (++writes === 5) throw new NbdError('EIO', 'pipe: write: Broken pipe');
    };
    await expect(copy(src, dst, opts({ connections: 2, requestSize: 64 * 1024 }))).rejects.toThrow(/Broken pipe/);
    expect(src.inFlight).toBe(0);
  });

  it('an abort signal stops it with EINTR', async () => {
    const src = holeyDisk(1);
    const dst = pipeSink();
    const ac = new AbortController();
    ac.abort('interrupted by SIGINT');
    await expect(copy(src, dst, opts({ signal: ac.signal }))).rejects.toThrow(/interrupted by SIGINT/);
  });
});

/** Noise with zero runs (whole 4K blocks and a partial one) and an odd length. */
function streamData(length = 5 * MiB + 333): Buffer {
  const data = noise(length, 21);
  data.fill(0, MiB, MiB + 3 * 4096);
  data.fill(0, 2 * MiB + 100, 2 * MiB + 5000);
  data.fill(0, 4 * MiB, 4 * MiB + 300_000);
  return data;
}

describe('stream source -> random-access destination: reads in order, writes behind', () => {
  it('byte-exact, several writes in flight, zero blocks as zero requests, final size set', async () => {
    const data = streamData();
    const src = streamSource('stdin', data);
    const dst = diskSink('nbd', undefined, data.length + MiB);
    const r = await copy(src, dst, opts({ requestSize: 64 * 1024 }));
    expect(r.bytes).toBe(data.length);
    expect(dst.finalSize).toBe(data.length);
    expect(dst.data.subarray(0, data.length).equals(data)).toBe(true);
    expect(dst.end).toBe(data.length);
    expect(dst.maxInFlight).toBeGreaterThan(1);
    expect(dst.zeroes).toBeGreaterThan(0);
  });

  it('--synchronous: one request at a time', async () => {
    const data = streamData().subarray(0, 2 * MiB + 1);
    const src = streamSource('stdin', data);
    const dst = diskSink('nbd', undefined, 3 * MiB);
    const realRead = src.read.bind(src);
    let overlaps = 0;
    src.read = (buffer: Uint8Array, offset: number, conn: number) => {
      if (dst.inFlight !== 0) overlaps++;
      return realRead(buffer, offset, conn);
    };
    await copy(src, dst, opts({ synchronous: true, requestSize: 64 * 1024 }));
    expect(dst.maxInFlight).toBe(1);
    expect(overlaps).toBe(0);
    expect(dst.data.subarray(0, data.length).equals(data)).toBe(true);
  });

  it('a stream longer than the destination fails with ENOSPC before writing past its end', async () => {
    const data = streamData();
    const src = streamSource('stdin', data);
    const dst = diskSink('nbd', 3 * MiB + 5, 8 * MiB);
    await expect(copy(src, dst, opts({ requestSize: 64 * 1024 }))).rejects.toThrow(/source is larger than the destination/);
    expect(dst.end).toBeLessThanOrEqual(3 * MiB + 5);
    expect(dst.inFlight).toBe(0);
    expect(dst.finalSize).toBeUndefined();
  });

  it('a failed write stops the copy and rejects with it, after the other writes settle', async () => {
    const data = streamData();
    const src = streamSource('stdin', data);
    const dst = diskSink('nbd', undefined, 8 * MiB);
    dst.failWriteAt = 2 * MiB + 70_000;
    await expect(copy(src, dst, opts({ requestSize: 64 * 1024 }))).rejects.toThrow(/write at \d+: Input\/output error/);
    expect(dst.inFlight).toBe(0);
    expect(dst.finalSize).toBeUndefined();
  });

  it('stream -> stream keeps one write at a time, in order', async () => {
    const data = streamData();
    const src = streamSource('stdin', data);
    const dst = pipeSink('stdout');
    await copy(src, dst, opts({ requestSize: 64 * 1024 }));
    expect(dst.outOfOrder).toBe(0);
    expect(sha(dst.bytes())).toBe(sha(data));
  });
});
