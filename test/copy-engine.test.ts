// The pipeline against in-memory endpoints that record every request: what is read, what is
// written, what becomes a zero request, limits, errors and draining.
import { describe, expect, it } from 'vitest';
import { copyEndpoints as copy } from '../src/copy/copier.js';
import { progressObserver } from '../src/copy/observers/progress.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from '../src/copy/options.js';
import { NbdError } from '../src/protocol/errors.js';
import { noise } from './helpers/files.js';
import { MemoryEndpoint } from './helpers/memory-endpoint.js';

const opts = (o: Partial<CopyOptions> = {}): CopyOptions => ({ ...DEFAULT_COPY_OPTIONS, ...o });
const MiB = 1 << 20;

/** Source with holes at [1M,3M) and [5M, end), random data elsewhere, a zero block at 4M+8K. */
function sparseSource(size = 6 * MiB + 123): MemoryEndpoint {
  const data = noise(size);
  data.fill(0, MiB, 3 * MiB);
  data.fill(0, 5 * MiB);
  data.fill(0, 4 * MiB + 8192, 4 * MiB + 12288);
  const src = new MemoryEndpoint('src', size, data);
  src.extentMap = [
    { offset: 0, length: MiB, zero: false },
    { offset: MiB, length: 2 * MiB, zero: true },
    { offset: 3 * MiB, length: 2 * MiB, zero: false },
    { offset: 5 * MiB, length: size - 5 * MiB, zero: true },
  ];
  return src;
}

describe('copy engine', () => {
  it('copies bytes exactly and never reads holes', async () => {
    const src = sparseSource();
    const dst = new MemoryEndpoint('dst', src.size, noise(src.size!, 7));
    const r = await copy(src, dst, opts());
    expect(r.bytes).toBe(src.size);
    expect(dst.data.equals(src.data)).toBe(true);
    for (const q of src.log.filter((x) => x.op === 'read')) {
      expect(q.offset + q.length <= MiB || (q.offset >= 3 * MiB && q.offset + q.length <= 5 * MiB)).toBe(true);
    }
    const zeros = dst.log.filter((x) => x.op === 'zero');
    expect(zeros.some((z) => z.offset === MiB && z.length === 2 * MiB)).toBe(true);
    // The all-zero 4K block inside data became a zero request, not a write.
    expect(zeros.some((z) => z.offset === 4 * MiB + 8192 && z.length === 4096)).toBe(true);
    expect(dst.log.filter((x) => x.op === 'write').every((w) => w.length <= 256 * 1024)).toBe(true);
  });

  it('skips zeroes entirely on a known-zero destination, allocates them with --allocated', async () => {
    const src = sparseSource();
    const dst = new MemoryEndpoint('dst', src.size);
    dst.isZero = true;
    await copy(src, dst, opts());
    expect(dst.log.filter((x) => x.op === 'zero')).toEqual([]);
    expect(dst.data.equals(src.data)).toBe(true);

    const dst2 = new MemoryEndpoint('dst2', src.size);
    dst2.isZero = true;
    await copy(src, dst2, opts({ allocated: true }));
    const zeros = dst2.log.filter((x) => x.op === 'zero');
    expect(zeros.length).toBeGreaterThan(0);
    expect(zeros.every((z) => z.allocate === true)).toBe(true);
    expect(zeros.reduce((a, z) => a + z.length, 0)).toBe(2 * MiB + (src.size! - 5 * MiB) + 4096);
  });

  it('honours --destination-is-zero, -S 0 and --no-extents', async () => {
    const src = sparseSource();
    const dst = new MemoryEndpoint('dst', src.size);
    await copy(src, dst, opts({ destinationIsZero: true }));
    expect(dst.log.filter((x) => x.op === 'zero')).toEqual([]);

    const src2 = sparseSource();
    const dst2 = new MemoryEndpoint('dst2', src2.size, noise(src2.size!, 3));
    await copy(src2, dst2, opts({ noExtents: true, sparseSize: 0 }));
    expect(src2.log.filter((x) => x.op === 'extents')).toEqual([]);
    expect(dst2.log.filter((x) => x.op === 'zero')).toEqual([]);
    expect(src2.log.filter((x) => x.op === 'read').reduce((a, q) => a + q.length, 0)).toBe(src2.size);
    expect(dst2.data.equals(src2.data)).toBe(true);
  });

  it('respects request size, block size limits, requests in flight and the queue size', async () => {
    const src = sparseSource(9 * MiB);
    src.minimumBlockSize = 512;
    src.maximumBlockSize = 64 * 1024;
    const dst = new MemoryEndpoint('dst', src.size);
    await copy(src, dst, opts({ requestSize: MiB, requests: 4 }));
    expect(src.log.filter((x) => x.op === 'read').every((q) => q.length <= 64 * 1024 && q.offset % 512 === 0)).toBe(true);
    expect(src.maxInFlight).toBeLessThanOrEqual(4);
    expect(dst.data.equals(src.data)).toBe(true);

    const src2 = sparseSource(9 * MiB);
    const dst2 = new MemoryEndpoint('dst2', src2.size);
    await copy(src2, dst2, opts({ requestSize: 64 * 1024, queueSize: 128 * 1024 }));
    expect(src2.maxInFlight).toBeLessThanOrEqual(2);
    expect(dst2.data.equals(src2.data)).toBe(true);

    // -S rounds up to the minimum block size: zero detection never splits a block.
    const src3 = new MemoryEndpoint('src3', MiB, noise(MiB, 4));
    src3.data.fill(0, 1536, 200 * 1024);
    src3.minimumBlockSize = 512;
    const dst3 = new MemoryEndpoint('dst3', MiB, noise(MiB, 5));
    await copy(src3, dst3, opts({ sparseSize: 1000 }));
    const writes = dst3.log.filter((x) => x.op === 'write' || x.op === 'zero');
    expect(writes.some((x) => x.op === 'zero')).toBe(true);
    expect(writes.every((x) => x.offset % 512 === 0 && x.length % 512 === 0)).toBe(true);
    expect(dst3.data.equals(src3.data)).toBe(true);
  });

  it('uses multi-conn only when both sides allow it, and --synchronous runs in order', async () => {
    const size = 300 * MiB;
    const src = new MemoryEndpoint('src', size);
    src.maxConnections = 8;
    src.extentMap = [{ offset: 0, length: size, zero: true }];
    const dst = new MemoryEndpoint('dst', size);
    dst.maxConnections = 8;
    const r = await copy(src, dst, opts({ connections: 4 }));
    expect(r.connections).toBe(4);
    expect(new Set(dst.log.map((x) => x.conn))).toEqual(new Set([0, 1, 2, 3]));

    const one = new MemoryEndpoint('one', size);
    one.maxConnections = 1;
    expect((await copy(src, one, opts({ connections: 4 }))).connections).toBe(1);

    const s3 = sparseSource();
    const d3 = new MemoryEndpoint('d3', s3.size);
    const r3 = await copy(s3, d3, opts({ synchronous: true }));
    expect(r3.lanesPerConnection).toBe(1);
    const offsets = d3.log.filter((x) => x.op !== 'extents').map((x) => x.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(s3.maxInFlight).toBe(1);
  });

  it('refuses a destination smaller than the source before writing anything', async () => {
    const src = sparseSource();
    const dst = new MemoryEndpoint('dst', src.size! - 1);
    await expect(copy(src, dst, opts())).rejects.toThrow(/smaller than source/);
    expect(dst.log).toEqual([]);
  });

  it('stops issuing after a read error, drains, and rejects with that error', async () => {
    const src = sparseSource(32 * MiB);
    src.extentMap = undefined;
    src.failReadAt = 2 * MiB;
    const dst = new MemoryEndpoint('dst', src.size);
    await expect(copy(src, dst, opts({ connections: 1 }))).rejects.toThrow(/read at 2097152: Input\/output error/);
    expect(src.inFlight).toBe(0);
    expect(dst.inFlight).toBe(0);
    // Far fewer reads than the whole disk: issuing stopped.
    expect(src.log.filter((x) => x.op === 'read').length).toBeLessThan(128);
  });

  it('stops on abort', async () => {
    const src = sparseSource(32 * MiB);
    src.extentMap = undefined;
    const dst = new MemoryEndpoint('dst', src.size);
    const ac = new AbortController();
    const p = copy(src, dst, opts({ signal: ac.signal }), [progressObserver((d) => { if (d > MiB) ac.abort(new NbdError('EINTR', 'interrupted by SIGINT')); })]);
    await expect(p).rejects.toThrow(/interrupted by SIGINT/);
    expect(src.inFlight).toBe(0);
  });

  it('copies a zero-size source', async () => {
    const src = new MemoryEndpoint('src', 0);
    const dst = new MemoryEndpoint('dst', 0);
    expect((await copy(src, dst, opts())).bytes).toBe(0);
  });
});

describe('how work is cut', () => {
  const BLOCK = 64 * 1024;

  /** Data and zero extents in 4 KiB steps that rarely meet a 64 KiB boundary; zero extents hold zeroes. */
  function fineGrainedSource(size: number): MemoryEndpoint {
    const data = noise(size, 9);
    const extents = [];
    const lengths = [4096, 69632, 12288, 135168, 8192, 65536, 200704, 4096, 331776];
    for (let at = 0, i = 0; at < size; i++) {
      const length = Math.min(lengths[i % lengths.length]!, size - at);
      const zero = i % 2 === 1;
      if (zero) data.fill(0, at, at + length);
      extents.push({ offset: at, length, zero });
      at += length;
    }
    const src = new MemoryEndpoint('src', size, data);
    src.extentMap = extents;
    return src;
  }

  it.each([4096, 0])('a destination with a 64 KiB minimum block (-S %i): whole blocks only, none written twice, all-zero blocks as zero requests', async (sparseSize) => {
    const size = 6 * MiB + 8192;
    const src = fineGrainedSource(size);
    const dst = new MemoryEndpoint('dst', size, noise(size, 5));
    dst.minimumBlockSize = BLOCK;
    await copy(src, dst, opts({ sparseSize, requestSize: 256 * 1024 }));
    expect(dst.data.equals(src.data)).toBe(true);
    const requests = dst.log.filter((x) => x.op === 'write' || x.op === 'zero').sort((a, b) => a.offset - b.offset);
    let end = 0;
    for (const r of requests) {
      expect(r.offset % BLOCK).toBe(0);
      expect((r.offset + r.length) % BLOCK === 0 || r.offset + r.length === size).toBe(true);
      expect(r.offset).toBeGreaterThanOrEqual(end);
      end = r.offset + r.length;
    }
    expect(end).toBe(size);
    // Every block the source has as zeroes is a zero request (from the extents, or found by
    // -S); with -S 0, exactly the whole blocks inside zero extents.
    const zeroed = new Set<number>();
    for (const r of requests) if (r.op === 'zero') for (let b = r.offset; b < r.offset + r.length; b += BLOCK) zeroed.add(b);
    const expected = new Set<number>();
    for (let b = 0; b < size; b += BLOCK) {
      const blockEnd = Math.min(b + BLOCK, size);
      const inZeroExtent = src.extentMap!.some((e) => e.zero && e.offset <= b && blockEnd <= e.offset + e.length);
      if (sparseSize === 0 ? inZeroExtent : src.data.subarray(b, blockEnd).every((x) => x === 0)) expected.add(b);
    }
    expect(expected.size).toBeGreaterThan(0);
    expect([...zeroed].sort((a, b) => a - b)).toEqual([...expected].sort((a, b) => a - b));
  });

  it('no request crosses a 128 MiB slice: a long zero run is one zero request per slice', async () => {
    // One connection: claims of 128 MiB (a quarter of the disk, rounded to whole slices).
    const size = 520 * MiB;
    const edge = 64 * 1024;
    const data = Buffer.alloc(size);
    noise(edge, 1).copy(data, 0);
    noise(edge, 2).copy(data, size - edge);
    const src = new MemoryEndpoint('src', size, data);
    src.extentMap = [
      { offset: 0, length: edge, zero: false },
      { offset: edge, length: size - 2 * edge, zero: true },
      { offset: size - edge, length: edge, zero: false },
    ];
    const dst = new MemoryEndpoint('dst', size, Buffer.alloc(size, 1));
    await copy(src, dst, opts({ connections: 1, sparseSize: 0 }));
    expect(dst.data.equals(src.data)).toBe(true);
    const slice = 128 * MiB;
    for (const r of [...src.log, ...dst.log].filter((x) => x.op === 'read' || x.op === 'write' || x.op === 'zero')) {
      expect(Math.floor(r.offset / slice)).toBe(Math.floor((r.offset + r.length - 1) / slice));
    }
    expect(dst.log.filter((x) => x.op === 'zero').map((z) => [z.offset, z.length]).sort((a, b) => a[0]! - b[0]!)).toEqual([
      [edge, slice - edge], [slice, slice], [2 * slice, slice], [3 * slice, slice], [4 * slice, size - 4 * slice - edge],
    ]);
   }, 240_000);
});
