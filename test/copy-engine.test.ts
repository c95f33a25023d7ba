// The pipeline against in-memory endpoints that record every request: what is read, what is
// written, what becomes a zero request, limits, errors and draining.
import { describe, expect, it } from 'vitest';
import { copyEndpoints as copy } from '../src/copy/copier.js';
import { progressObserver } from '../src/copy/observers/progress.js';
import type { Endpoint, SourceExtent } from '../src/copy/endpoint.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from '../src/copy/options.js';
import { NbdError } from '../src/protocol/errors.js';
import { clipExtents, noise } from './helpers/files.js';

interface Request { op: 'read' | 'write' | 'zero' | 'extents'; offset: number; length: number; conn: number; allocate?: boolean }

class MemoryEndpoint implements Endpoint {
  readonly name: string;
  readonly opsName = 'file_ops';
  readonly sequential = false;
  preferredBlockSize = 4096;
  minimumBlockSize = 1;
  maximumBlockSize = 0xffffffff;
  connections = 1;
  maxConnections = Infinity;
  canExtents = true;
  isZero = false;
  canZero = true;
  readonly data: Buffer;
  readonly log: Request[] = [];
  inFlight = 0;
  maxInFlight = 0;
  failReadAt: number | undefined;
  /** Extents of the source; undefined = all data. */
  extentMap: SourceExtent[] | undefined;

  /** Like a file: any connection index works. */
  get local(): boolean {
    return this.maxConnections === Infinity;
  }

  constructor(name: string, readonly size: number | undefined, data?: Buffer) {
    this.name = name;
    this.data = data ?? Buffer.alloc(size ?? 0);
  }

  private async track<T>(r: Request, body: () => T): Promise<T> {
    this.log.push(r);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    this.inFlight--;
    if (r.conn >= Math.max(1, this.connections) && this.maxConnections !== Infinity) throw new Error(`bad conn ${r.conn}`);
    return body();
  }

  read(buffer: Uint8Array, offset: number, conn: number): Promise<number> {
    return this.track({ op: 'read', offset, length: buffer.length, conn }, () => {
      if (this.failReadAt !== undefined && offset <= this.failReadAt && this.failReadAt < offset + buffer.length) {
        throw new NbdError('EIO', `${this.name}: read at ${offset}: Input/output error`);
      }
      this.data.copy(buffer, 0, offset, offset + buffer.length);
      return buffer.length;
    });
  }
  write(buffer: Uint8Array, offset: number, conn: number): Promise<void> {
    return this.track({ op: 'write', offset, length: buffer.length, conn }, () => {
      Buffer.from(buffer.buffer, buffer.byteOffset, buffer.length).copy(this.data, offset);
    });
  }
  zero(offset: number, length: number, allocate: boolean, conn: number): Promise<void> {
    return this.track({ op: 'zero', offset, length, conn, allocate }, () => {
      this.data.fill(0, offset, offset + length);
    });
  }
  async extents(offset: number, length: number, conn: number): Promise<SourceExtent[]> {
    this.log.push({ op: 'extents', offset, length, conn });
    if (this.extentMap === undefined) return [{ offset, length, zero: false }];
    return clipExtents(this.extentMap, offset, length);
  }
  async setConnections(n: number): Promise<void> {
    if (this.maxConnections !== Infinity) this.connections = Math.min(n, this.maxConnections);
  }
  async flush(): Promise<void> { this.log.push({ op: 'extents', offset: -1, length: 0, conn: 0 }); }
  async close(): Promise<void> {}
}

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
