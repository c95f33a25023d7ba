// Incremental request parser for the transmission phase. It copies a header into a fixed
// buffer only when a header straddles two socket chunks, and a WRITE payload lands in one
// buffer: a view of the socket chunk when it arrived whole, a pooled buffer otherwise.
import { NbdError } from '../protocol/errors.js';
import { decodeRequestHeader, requestHasPayload, requestSize, type RequestHeader } from '../protocol/requests.js';
import type { BufferPool } from './buffer-pool.js';
import { MAX_SKIPPABLE_PAYLOAD } from './options.js';

/** A request header as decoded, and what the server keeps beside it while it runs. */
export interface ParsedRequest extends RequestHeader {
  /** WRITE data (exactly `length` bytes), when the request carried a payload we kept. */
  payload: Buffer | undefined;
  /** Pooled buffer behind `payload`, to give back once the write is done. */
  pooled: Buffer | undefined;
  /** The payload was read and thrown away (the request is already known to fail). */
  payloadDropped: boolean;
  /** Read reply bytes this request counts against the session's read-ahead (0 once sent). */
  readCost: number;
}

export interface ParserEvents {
  /** Decides, from the header alone, whether a payload is worth keeping. */
  keepPayload(req: ParsedRequest): boolean;
  request(req: ParsedRequest): void;
  /** The client broke the framing: the connection must be dropped. */
  violation(message: string): void;
}

export class RequestParser {
  private readonly header: Buffer;
  private readonly headerSize: number;
  private headerFill = 0;
  private current: ParsedRequest | undefined;
  private payloadFill = 0;
  private payloadLeft = 0;
  private stopped = false;

  constructor(
    private readonly extended: boolean,
    private readonly events: ParserEvents,
    private readonly pool: BufferPool,
  ) {
    this.headerSize = requestSize(extended);
    this.header = Buffer.allocUnsafe(this.headerSize);
  }

  stop(): void {
    this.stopped = true;
  }

  push(chunk: Buffer): void {
    const headerSize = this.headerSize;
    let pos = 0;
    const end = chunk.length;
    while (pos < end && !this.stopped) {
      if (this.payloadLeft > 0) {
        pos = this.takePayload(chunk, pos);
        continue;
      }
      if (this.headerFill === 0 && end - pos >= headerSize) {
        this.startRequest(chunk, pos, chunk, pos + headerSize);
        pos += headerSize;
        continue;
      }
      const n = Math.min(headerSize - this.headerFill, end - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      if (this.headerFill === headerSize) {
        this.headerFill = 0;
        this.startRequest(this.header, 0, chunk, pos);
      }
    }
  }

  /** True when a request is half received (a header or payload is incomplete). */
  get midRequest(): boolean {
    return this.headerFill > 0 || this.payloadLeft > 0;
  }

  private startRequest(buf: Buffer, at: number, chunk: Buffer, chunkPos: number): void {
    const req: ParsedRequest = {
      flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offset: 0, length: 0,
      payload: undefined, pooled: undefined, payloadDropped: false, readCost: 0,
    };
    try {
      decodeRequestHeader(buf, at, this.extended, req);
    } catch (err) {
      if (!(err instanceof NbdError)) throw err;
      this.stopped = true;
      this.events.violation(err.message);
      return;
    }
    const length = req.length;
    const hasPayload = requestHasPayload(req.type, req.flags, this.extended);
    if (!hasPayload || length === 0) {
      this.events.request(req);
      return;
    }
    if (length > MAX_SKIPPABLE_PAYLOAD) {
      this.stopped = true;
      this.events.violation(`request payload of ${length} bytes is beyond any sane limit`);
      return;
    }
    this.current = req;
    this.payloadFill = 0;
    this.payloadLeft = length;
    if (!this.events.keepPayload(req)) {
      req.payloadDropped = true;
      return;
    }
    if (chunk.length - chunkPos >= length) {
      // Whole payload in this chunk: Node gives every read its own buffer, so a view is safe to keep.
      req.payload = chunk.subarray(chunkPos, chunkPos + length);
      return;
    }
    req.pooled = this.pool.get(length);
    req.payload = req.pooled.subarray(0, length);
  }

  private takePayload(chunk: Buffer, pos: number): number {
    const req = this.current!;
    const n = Math.min(this.payloadLeft, chunk.length - pos);
    // A payload that is a view of the chunk (see startRequest) needs no copy.
    if (req.pooled) chunk.copy(req.pooled, this.payloadFill, pos, pos + n);
    this.payloadFill += n;
    this.payloadLeft -= n;
    if (this.payloadLeft === 0) {
      this.current = undefined;
      this.events.request(req);
    }
    return pos + n;
  }
}
