// The copier's sequential paths against in-memory endpoints: a random-access source read
// ahead (several connections, holes, odd sizes) into a stream written strictly in order, and
// a stream of unknown length into a random-access destination. Bytes are compared exactly.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { copyEndpoints as copy } from '../src/copy/copier.js';
import type { Endpoint, SourceExtent } from '../src/copy/endpoint.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from '../src/copy/options.js';
import { NbdError } from '../src/protocol/errors.js';
import { clipExtents, noise } from './helpers/files.js';

const MiB = 1 << 20;
const opts = (o: Partial<CopyOptions> = {}): CopyOptions => ({ ...DEFAULT_COPY_OPTIONS, ...o });
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
/** A random delay of 0-2 ticks, so replies come back out of order. */
const jitter = (i: number): Promise<void> =>
  new Promise((resolve) => (i % 3 === 0 ? setImmediate(resolve) : i % 3 === 1 ? setTimeout(resolve, 1) : resolve()));

/** A random-access source (an NBD server, say) with holes, answering reads out of order. */
class DiskSource implements Endpoint {
  readonly opsName = 'nbd_ops';
  readonly sequential = false;
  readonly local = false;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  connections = 1;
  readonly canExtents = true;
  readonly isZero = false;
  readonly canZero = false;
  readonly size: number;
  inFlight = 0;
  maxInFlight = 0;
  readonly connsUsed = new Set<number>();
  /** Reads that touch a hole (must be none). */
  holeReads = 0;
  failReadAt: number | undefined;
  private calls = 0;

  constructor(readonly name: string, readonly data: Buffer, readonly extentMap: SourceExtent[], readonly maxConnections: number) {
    this.size = data.length;
  }

  async setConnections(n: number): Promise<void> {
    this.connections = Math.min(n, this.maxConnections);
  }

  async read(buffer: Uint8Array, offset: number, conn: number): Promise<number> {
    if (conn >= this.connections) throw new Error(`bad conn ${conn}`);
    this.connsUsed.add(conn);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await jitter(this.calls++);
    this.inFlight--;
    if (this.failReadAt !== undefined && offset <= this.failReadAt && this.failReadAt < offset + buffer.length) {
      throw new NbdError('EIO', `${this.name}: read at ${offset}: Input/output error`);
    }
    for (const e of this.extentMap) {
      if (e.zero && e.offset < offset + buffer.length && offset < e.offset + e.length) this.holeReads++;
    }
    this.data.copy(buffer, 0, offset, offset + buffer.length);
    return buffer.length;
  }

  async write(): Promise<void> { throw new Error('read-only'); }
  async zero(): Promise<void> { throw new Error('read-only'); }

  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    return clipExtents(this.extentMap, offset, length);
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

/** What a pipe (stdin, stdout) is: strictly sequential, one connection, no extents or zeroing. */
abstract class StreamEndpointBase {
  readonly opsName = 'pipe_ops';
  readonly size = undefined;
  readonly sequential = true;
  readonly local = true;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = 1;
  readonly canExtents = false;
  readonly isZero = false;
  readonly canZero = false;

  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    return [{ offset, length, zero: false }];
  }

  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A pipe: appends what it is given, checks every write starts where the last one ended. */
class PipeSink extends StreamEndpointBase implements Endpoint {
  readonly chunks: Buffer[] = [];
  written = 0;
  writing = 0;
  outOfOrder = 0;

  constructor(readonly name = 'pipe') {
    super();
  }

  async read(): Promise<number> { throw new Error('write-only'); }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    if (offset !== this.written || this.writing !== 0) this.outOfOrder++;
    this.writing++;
    this.chunks.push(Buffer.from(buffer));
    this.written += buffer.length;
    await jitter(this.chunks.length);
    this.writing--;
  }

  async zero(offset: number, length: number): Promise<void> {
    await this.write(Buffer.alloc(length), offset);
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Odd size; data, a hole, data, a hole in the middle of a request, odd-sized data at the end. */
function holeyDisk(maxConnections: number): DiskSource {
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
  return new DiskSource('disk', data, extents, maxConnections);
}

describe('random-access source -> stream: reads ahead, writes in order', () => {
  it.each([1, 4])('byte-exact with holes and an odd size, %i connection(s)', async (conns) => {
    const src = holeyDisk(conns);
    const dst = new PipeSink();
    const r = await copy(src, dst, opts({ connections: 4, requestSize: 64 * 1024 }));
    expect(r.bytes).toBe(src.size);
    expect(dst.outOfOrder).toBe(0);
    expect(dst.written).toBe(src.size);
    expect(sha(dst.bytes())).toBe(sha(src.data));
    expect(src.holeReads).toBe(0);
    expect(src.maxInFlight).toBeGreaterThan(1);
    expect(src.connsUsed.size).toBe(conns);
  });

  it('never has more reads in flight than --requests x connections', async () => {
    const src = holeyDisk(2);
    const dst = new PipeSink();
    await copy(src, dst, opts({ connections: 2, requests: 3, requestSize: 64 * 1024 }));
    expect(src.maxInFlight).toBeLessThanOrEqual(6);
    expect(sha(dst.bytes())).toBe(sha(src.data));
  });

  it('--synchronous: one read at a time, one connection', async () => {
    const src = holeyDisk(4);
    const dst = new PipeSink();
    const r = await copy(src, dst, opts({ synchronous: true, requestSize: 64 * 1024 }));
    expect(r.lanesPerConnection).toBe(1);
    expect(r.connections).toBe(1);
    expect(src.maxInFlight).toBe(1);
    expect(sha(dst.bytes())).toBe(sha(src.data));
  });

  it('a read error stops the copy: rejects, nothing written past the failed request, no read left running', async () => {
    const src = holeyDisk(2);
    src.failReadAt = 2 * MiB + 5;
    const dst = new PipeSink();
    await expect(copy(src, dst, opts({ connections: 2, requestSize: 64 * 1024 }))).rejects.toThrow(/read at 2097152: Input\/output error/);
    expect(dst.written).toBeLessThanOrEqual(2 * MiB);
    expect(dst.outOfOrder).toBe(0);
    expect(dst.bytes().equals(src.data.subarray(0, dst.written))).toBe(true);
    expect(src.inFlight).toBe(0);
  });

  it('a failing write stops the reads and rejects with that error', async () => {
    const src = holeyDisk(2);
    const dst = new PipeSink();
    let writes = 0;
    dst.write = async () => {
      if (++writes === 5) throw new NbdError('EIO', 'pipe: write: Broken pipe');
    };
    await expect(copy(src, dst, opts({ connections: 2, requestSize: 64 * 1024 }))).rejects.toThrow(/Broken pipe/);
    expect(src.inFlight).toBe(0);
  });

  it('an abort signal stops it with EINTR', async () => {
    const src = holeyDisk(1);
    const dst = new PipeSink();
    const ac = new AbortController();
    ac.abort('interrupted by SIGINT');
    await expect(copy(src, dst, opts({ signal: ac.signal }))).rejects.toThrow(/interrupted by SIGINT/);
  });
});

/** stdin: hands out `data` in pieces of at most `chunk` bytes, strictly in order. */
class StreamSource extends StreamEndpointBase implements Endpoint {
  private pos = 0;
  reading = 0;
  overlapped = 0;

  constructor(readonly name: string, readonly data: Buffer) {
    super();
  }

  async read(buffer: Uint8Array, offset: number): Promise<number> {
    if (offset !== this.pos || this.reading !== 0) throw new Error(`stream read out of order at ${offset}`);
    this.reading++;
    await jitter(this.pos);
    this.reading--;
    const n = Math.min(buffer.length, this.data.length - this.pos);
    this.data.copy(buffer, 0, this.pos, this.pos + n);
    this.pos += n;
    return n;
  }

  async write(): Promise<void> { throw new Error('read-only'); }
  async zero(): Promise<void> { throw new Error('read-only'); }
}

/** A random-access destination (NBD-like) counting writes in flight and the final size. */
class DiskSink implements Endpoint {
  readonly opsName = 'nbd_ops';
  readonly sequential = false;
  readonly local = false;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  connections = 1;
  readonly maxConnections = 1;
  readonly canExtents = false;
  readonly isZero = false;
  readonly canZero = true;
  readonly data: Buffer;
  inFlight = 0;
  maxInFlight = 0;
  /** Highest byte touched by a write or zero. */
  end = 0;
  finalSize: number | undefined;
  zeroes = 0;
  failWriteAt: number | undefined;
  private calls = 0;

  constructor(readonly name: string, readonly size: number | undefined, capacity: number) {
    this.data = Buffer.alloc(capacity);
  }

  private async op(offset: number, length: number, body: () => void): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await jitter(this.calls++);
    this.inFlight--;
    if (this.failWriteAt !== undefined && offset <= this.failWriteAt && this.failWriteAt < offset + length) {
      throw new NbdError('EIO', `${this.name}: write at ${offset}: Input/output error`);
    }
    this.end = Math.max(this.end, offset + length);
    body();
  }

  async read(): Promise<number> { throw new Error('write-only'); }

  write(buffer: Uint8Array, offset: number): Promise<void> {
    const copy = Buffer.from(buffer);
    return this.op(offset, buffer.length, () => copy.copy(this.data, offset));
  }

  zero(offset: number, length: number): Promise<void> {
    this.zeroes++;
    return this.op(offset, length, () => this.data.fill(0, offset, offset + length));
  }

  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    return [{ offset, length, zero: false }];
  }
  async setFinalSize(size: number): Promise<void> {
    if (this.inFlight !== 0) throw new Error('setFinalSize with writes in flight');
    this.finalSize = size;
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}

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
    const src = new StreamSource('stdin', data);
    const dst = new DiskSink('nbd', undefined, data.length + MiB);
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
    const src = new StreamSource('stdin', data);
    const dst = new DiskSink('nbd', undefined, 3 * MiB);
    const realRead = src.read.bind(src);
    let overlaps = 0;
    src.read = (buffer: Uint8Array, offset: number) => {
      if (dst.inFlight !== 0) overlaps++;
      return realRead(buffer, offset);
    };
    await copy(src, dst, opts({ synchronous: true, requestSize: 64 * 1024 }));
    expect(dst.maxInFlight).toBe(1);
    expect(overlaps).toBe(0);
    expect(dst.data.subarray(0, data.length).equals(data)).toBe(true);
  });

  it('a stream longer than the destination fails with ENOSPC before writing past its end', async () => {
    const data = streamData();
    const src = new StreamSource('stdin', data);
    const dst = new DiskSink('nbd', 3 * MiB + 5, 8 * MiB);
    await expect(copy(src, dst, opts({ requestSize: 64 * 1024 }))).rejects.toThrow(/source is larger than the destination/);
    expect(dst.end).toBeLessThanOrEqual(3 * MiB + 5);
    expect(dst.inFlight).toBe(0);
    expect(dst.finalSize).toBeUndefined();
  });

  it('a failed write stops the copy and rejects with it, after the other writes settle', async () => {
    const data = streamData();
    const src = new StreamSource('stdin', data);
    const dst = new DiskSink('nbd', undefined, 8 * MiB);
    dst.failWriteAt = 2 * MiB + 70_000;
    await expect(copy(src, dst, opts({ requestSize: 64 * 1024 }))).rejects.toThrow(/write at \d+: Input\/output error/);
    expect(dst.inFlight).toBe(0);
    expect(dst.finalSize).toBeUndefined();
  });

  it('stream -> stream keeps one write at a time, in order', async () => {
    const data = streamData();
    const src = new StreamSource('stdin', data);
    const dst = new PipeSink('stdout');
    await copy(src, dst, opts({ requestSize: 64 * 1024 }));
    expect(dst.outOfOrder).toBe(0);
    expect(sha(dst.bytes())).toBe(sha(data));
  });
});
