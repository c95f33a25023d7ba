// The one in-memory Endpoint of the copy engine's tests: a disk (random access, extents,
// several connections) or a pipe (strictly in order), as a source or a destination. It
// records every request and counts what the tests check: requests in flight, connections
// used, reads of holes, stream requests out of order.
import type { Endpoint, OpsName, SourceExtent } from '../../src/copy/endpoint.js';
import { NbdError } from '../../src/protocol/errors.js';
import { clipExtents } from './files.js';

export interface Request {
  op: 'read' | 'write' | 'zero' | 'extents' | 'flush';
  offset: number;
  length: number;
  conn: number;
  allocate?: boolean;
}

export interface MemoryEndpointInit {
  /** A pipe: sequential, one connection, no extents, zeroes written out; reads and writes in order. */
  stream?: boolean;
  /** What the source's extents say; undefined: all data. */
  extents?: SourceExtent[];
  /** Default Infinity (any connection index works, like a file); 1 for a stream. */
  maxConnections?: number;
  /** Default: a stream, or maxConnections Infinity (no server behind it). */
  local?: boolean;
  canZero?: boolean;
  /** 'tick': every request waits one setImmediate. 'jitter': 0, 1 tick or 1 ms in turn, so replies come back out of order. */
  timing?: 'tick' | 'jitter';
}

export class MemoryEndpoint implements Endpoint {
  readonly opsName: OpsName;
  readonly sequential: boolean;
  preferredBlockSize = 4096;
  minimumBlockSize = 1;
  maximumBlockSize = 0xffffffff;
  connections = 1;
  maxConnections: number;
  canExtents: boolean;
  isZero = false;
  canZero: boolean;
  /** The bytes: the source's, or what was written (a stream destination appends to `chunks`). */
  readonly data: Buffer;
  readonly chunks: Buffer[] = [];
  readonly log: Request[] = [];
  extentMap: SourceExtent[] | undefined;
  timing: 'tick' | 'jitter';
  inFlight = 0;
  maxInFlight = 0;
  readonly connsUsed = new Set<number>();
  /** Reads that touched a zero extent (a copy should read none). */
  holeReads = 0;
  /** Stream requests not at the current position, or while another one was running. */
  outOfOrder = 0;
  /** Stream: bytes read or written so far. */
  position = 0;
  /** Highest byte a write or zero touched. */
  end = 0;
  finalSize: number | undefined;
  failReadAt: number | undefined;
  failWriteAt: number | undefined;
  private readonly localOverride: boolean | undefined;
  private streaming = 0;
  private calls = 0;

  constructor(readonly name: string, readonly size: number | undefined, data?: Buffer, init: MemoryEndpointInit = {}) {
    this.data = data ?? Buffer.alloc(size ?? 0);
    this.sequential = init.stream === true;
    this.opsName = this.sequential ? 'pipe_ops' : 'file_ops';
    this.maxConnections = init.maxConnections ?? (this.sequential ? 1 : Infinity);
    this.canExtents = !this.sequential;
    this.canZero = init.canZero ?? !this.sequential;
    this.extentMap = init.extents;
    this.timing = init.timing ?? 'tick';
    this.localOverride = init.local;
  }

  get local(): boolean {
    return this.localOverride ?? (this.sequential || this.maxConnections === Infinity);
  }

  /** What a stream destination received, or the disk's bytes. */
  bytes(): Buffer {
    return this.sequential ? Buffer.concat(this.chunks) : this.data;
  }

  get zeroes(): number {
    return this.log.filter((r) => r.op === 'zero').length;
  }

  private wait(): Promise<void> {
    const i = this.calls++;
    if (this.timing === 'tick') return new Promise((resolve) => setImmediate(resolve));
    return new Promise((resolve) => (i % 3 === 0 ? setImmediate(resolve) : i % 3 === 1 ? setTimeout(resolve, 1) : resolve()));
  }

  private async track<T>(r: Request, body: () => T): Promise<T> {
    this.log.push(r);
    this.connsUsed.add(r.conn);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await this.wait();
    this.inFlight--;
    if (r.conn >= Math.max(1, this.connections) && this.maxConnections !== Infinity) throw new Error(`bad conn ${r.conn}`);
    return body();
  }

  async setConnections(n: number): Promise<void> {
    if (this.maxConnections !== Infinity) this.connections = Math.min(n, this.maxConnections);
  }

  read(buffer: Uint8Array, offset: number, conn: number): Promise<number> {
    if (this.sequential) {
      // A stream cannot seek: a read anywhere but the current position is a bug in the copier.
      if (offset !== this.position || this.streaming !== 0) throw new Error(`stream read out of order at ${offset}`);
      this.streaming++;
    }
    return this.track({ op: 'read', offset, length: buffer.length, conn }, () => {
      if (this.failReadAt !== undefined && offset <= this.failReadAt && this.failReadAt < offset + buffer.length) {
        throw new NbdError('EIO', `${this.name}: read at ${offset}: Input/output error`);
      }
      if (this.sequential) {
        this.streaming--;
        const n = Math.min(buffer.length, this.data.length - this.position);
        this.data.copy(buffer, 0, this.position, this.position + n);
        this.position += n;
        return n;
      }
      for (const e of this.extentMap ?? []) {
        if (e.zero && e.offset < offset + buffer.length && offset < e.offset + e.length) this.holeReads++;
      }
      this.data.copy(buffer, 0, offset, offset + buffer.length);
      return buffer.length;
    });
  }

  write(buffer: Uint8Array, offset: number, conn: number): Promise<void> {
    const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.length);
    if (this.sequential) {
      if (offset !== this.position || this.streaming !== 0) this.outOfOrder++;
      this.streaming++;
      this.chunks.push(Buffer.from(bytes));
      this.position += bytes.length;
    }
    return this.track({ op: 'write', offset, length: buffer.length, conn }, () => {
      if (this.sequential) this.streaming--;
      this.checkWrite(offset, buffer.length);
      if (!this.sequential) bytes.copy(this.data, offset);
    });
  }

  zero(offset: number, length: number, allocate: boolean, conn: number): Promise<void> {
    if (this.sequential) return this.write(Buffer.alloc(length), offset, conn);
    return this.track({ op: 'zero', offset, length, conn, allocate }, () => {
      this.checkWrite(offset, length);
      this.data.fill(0, offset, offset + length);
    });
  }

  private checkWrite(offset: number, length: number): void {
    if (this.failWriteAt !== undefined && offset <= this.failWriteAt && this.failWriteAt < offset + length) {
      throw new NbdError('EIO', `${this.name}: write at ${offset}: Input/output error`);
    }
    this.end = Math.max(this.end, offset + length);
  }

  async extents(offset: number, length: number, conn: number): Promise<SourceExtent[]> {
    this.log.push({ op: 'extents', offset, length, conn });
    if (this.extentMap === undefined) return [{ offset, length, zero: false }];
    return clipExtents(this.extentMap, offset, length);
  }

  async setFinalSize(size: number): Promise<void> {
    if (this.inFlight !== 0) throw new Error('setFinalSize with writes in flight');
    this.finalSize = size;
  }

  async flush(): Promise<void> {
    this.log.push({ op: 'flush', offset: 0, length: 0, conn: 0 });
  }

  async close(): Promise<void> {}
}
