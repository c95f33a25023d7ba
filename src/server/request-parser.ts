// Incremental request parser for the transmission phase. It copies a header into a fixed
// buffer only when a header straddles two socket chunks, and a WRITE payload lands in one
// buffer: a view of the socket chunk when it arrived whole, a pooled buffer otherwise.
import {
  CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, COMPACT_REQUEST_SIZE, EXTENDED_REQUEST_MAGIC, EXTENDED_REQUEST_SIZE,
  REQUEST_MAGIC,
} from '../protocol/constants.js';
import type { BufferPool } from './buffer-pool.js';
import { MAX_SKIPPABLE_PAYLOAD } from './options.js';
import type { Cookie } from './wire.js';

const TWO_32 = 0x1_0000_0000;

export interface ParsedRequest {
  flags: number;
  type: number;
  cookie: Cookie;
  offset: number;
  length: number;
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
  private readonly header = Buffer.allocUnsafe(EXTENDED_REQUEST_SIZE);
  private headerFill = 0;
  private current: ParsedRequest | undefined;
  private payloadFill = 0;
  private payloadLeft = 0;
  private stopped = false;

  constructor(
    private readonly extended: boolean,
    private readonly events: ParserEvents,
    private readonly pool: BufferPool,
  ) {}

  stop(): void {
    this.stopped = true;
  }

  push(chunk: Buffer): void {
    const headerSize = this.extended ? EXTENDED_REQUEST_SIZE : COMPACT_REQUEST_SIZE;
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
    const magic = buf.readUInt32BE(at);
    const want = this.extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC;
    if (magic !== want) {
      this.stopped = true;
      this.events.violation(`bad request magic 0x${magic.toString(16)}`);
      return;
    }
    const flags = buf.readUInt16BE(at + 4);
    const type = buf.readUInt16BE(at + 6);
    const cookie: Cookie = { hi: buf.readUInt32BE(at + 8), lo: buf.readUInt32BE(at + 12) };
    // Offsets past 2^53 lose precision but stay far beyond any export size, so they still fail bounds checks.
    const offset = buf.readUInt32BE(at + 16) * TWO_32 + buf.readUInt32BE(at + 20);
    const length = this.extended ? buf.readUInt32BE(at + 24) * TWO_32 + buf.readUInt32BE(at + 28) : buf.readUInt32BE(at + 24);
    const req: ParsedRequest = { flags, type, cookie, offset, length, payload: undefined, pooled: undefined, payloadDropped: false, readCost: 0 };

    // A payload follows a WRITE, and in extended mode any request flagged PAYLOAD_LEN.
    const hasPayload = type === CMD_WRITE || (this.extended && (flags & CMD_FLAG_PAYLOAD_LEN) !== 0);
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
