// Frames replies with the protocol's encoders and writes them to one connection. A reply, its
// header and payload together, goes out in one write, so replies never interleave on the wire
// even though commands overlap; a read reply is built in a pooled buffer that goes back to
// the pool once the socket has taken it.
import type { Duplex } from 'node:stream';
import {
  REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE, SIMPLE_REPLY_SIZE, STATE_ZERO,
} from '../protocol/constants.js';
import {
  OFFSET_DATA_HEADER_SIZE, blockStatusPayloadSize, encodeBlockStatus, encodeErrorChunk, encodeOffsetDataHeader,
  encodeOffsetHole, errorChunkSize, offsetHoleSize, type Extent,
} from '../protocol/chunks.js';
import { wireFromCode, type ErrnoCode } from '../protocol/errors.js';
import { ReplyStyle, chunkHeaderSize, encodeChunkHeader, encodeSimpleReply } from '../protocol/replies.js';
import { encodeContextsReply } from './block-status-reply.js';
import type { BufferPool } from './buffer-pool.js';
import type { ParsedRequest } from './request-parser.js';

/** Reply bytes queued on the socket beyond which the connection should stop taking requests. */
const MAX_QUEUED_REPLY_BYTES = 32 * 1024 * 1024;
/** Longest error message we send (the spec asks for short, human-readable text). */
const MAX_ERROR_MESSAGE = 1024;
/** Hole chunks keep the 12-byte form: the spec fixes OFFSET_HOLE's length in every mode. */
const HOLE_CHUNK_PAYLOAD = offsetHoleSize(false);

export interface ReplyEvents {
  /** The socket took a read reply, or it was dropped: its bytes no longer count as unsent. */
  readSent(req: ParsedRequest): void;
  /** Replies queued on the socket passed the limit: take no requests until it drains. */
  backlog(): void;
}

/** A read reply in fragments, framing in place: data fragment `i` goes at `dataAt[i]` (-1 for a hole). */
export interface FragmentedRead {
  buf: Buffer;
  total: number;
  dataAt: number[];
}

export class ReplyWriter {
  /** Structured or extended replies: reads may be sent in chunks. */
  readonly structured: boolean;
  readonly extended: boolean;
  /** Chunk header size (structured or extended). */
  private readonly chunkHeader: number;
  /** Where the data of an unfragmented read starts in its reply buffer. */
  readonly readDataAt: number;
  private stopped = false;

  constructor(
    private readonly stream: Duplex,
    private readonly style: ReplyStyle,
    private readonly pool: BufferPool,
    private readonly events: ReplyEvents,
  ) {
    this.structured = style !== ReplyStyle.Simple;
    this.extended = style === ReplyStyle.Extended;
    this.chunkHeader = chunkHeaderSize(this.extended);
    this.readDataAt = style === ReplyStyle.Simple ? SIMPLE_REPLY_SIZE : this.chunkHeader + OFFSET_DATA_HEADER_SIZE;
  }

  /** The connection is going away: replies from now on are dropped. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * A pooled buffer holding a successful read reply's framing, with room for `req.length`
   * bytes of data at `readDataAt`. Hand it to sendRead once filled, or to abandon.
   */
  startRead(req: ParsedRequest): Buffer {
    const buf = this.pool.get(this.readDataAt + req.length);
    if (this.style === ReplyStyle.Simple) {
      encodeSimpleReply(buf, 0, 0, req);
    } else {
      const h = encodeChunkHeader(buf, 0, this.extended, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req, req.offset, OFFSET_DATA_HEADER_SIZE + req.length);
      encodeOffsetDataHeader(buf, h, req.offset);
    }
    return buf;
  }

  /**
   * A pooled buffer holding a structured read reply split at `fragments` (contiguous from the
   * request's offset): holes as complete OFFSET_HOLE chunks, data as OFFSET_DATA chunks whose
   * bytes are still to be filled in.
   */
  startFragmentedRead(req: ParsedRequest, fragments: readonly Extent[]): FragmentedRead {
    const h = this.chunkHeader;
    let total = 0;
    for (const f of fragments) total += h + ((f.flags & STATE_ZERO) !== 0 ? HOLE_CHUNK_PAYLOAD : OFFSET_DATA_HEADER_SIZE + f.length);
    const buf = this.pool.get(total);
    const dataAt: number[] = [];
    let p = 0;
    let pos = req.offset;
    for (let i = 0; i < fragments.length; i++) {
      const f = fragments[i]!;
      const done = i === fragments.length - 1 ? REPLY_FLAG_DONE : 0;
      if ((f.flags & STATE_ZERO) !== 0) {
        p += encodeChunkHeader(buf, p, this.extended, done, REPLY_TYPE_OFFSET_HOLE, req, req.offset, HOLE_CHUNK_PAYLOAD);
        p += encodeOffsetHole(buf, p, pos, f.length, false);
        dataAt.push(-1);
      } else {
        p += encodeChunkHeader(buf, p, this.extended, done, REPLY_TYPE_OFFSET_DATA, req, req.offset, OFFSET_DATA_HEADER_SIZE + f.length);
        p += encodeOffsetDataHeader(buf, p, pos);
        dataAt.push(p);
        p += f.length;
      }
      pos += f.length;
    }
    return { buf, total, dataAt };
  }

  /** Sends a read reply from startRead (`total` = readDataAt + length) or startFragmentedRead. */
  sendRead(req: ParsedRequest, buf: Buffer, total: number): void {
    this.send(buf, total, buf, req);
  }

  /** Gives back the buffer of a read that failed before it was sent. */
  abandon(buf: Buffer): void {
    this.pool.release(buf);
  }

  /** Success without data. */
  ok(req: ParsedRequest): void {
    if (this.extended) return this.none(req);
    // Simple replies are allowed for payload-less successes even with structured replies.
    const buf = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
    encodeSimpleReply(buf, 0, 0, req);
    this.send(buf, SIMPLE_REPLY_SIZE, undefined);
  }

  /** A final NONE chunk (structured or extended only). */
  none(req: ParsedRequest): void {
    const h = this.chunkHeader;
    const buf = Buffer.allocUnsafe(h);
    encodeChunkHeader(buf, 0, this.extended, REPLY_FLAG_DONE, REPLY_TYPE_NONE, req, req.offset, 0);
    this.send(buf, h, undefined);
  }

  error(req: ParsedRequest, code: ErrnoCode, message: string): void {
    const wire = wireFromCode(code);
    if (this.style === ReplyStyle.Simple) {
      const buf = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
      encodeSimpleReply(buf, 0, wire, req);
      this.send(buf, SIMPLE_REPLY_SIZE, undefined);
      return;
    }
    const text = message.length > MAX_ERROR_MESSAGE ? message.slice(0, MAX_ERROR_MESSAGE) : message;
    const payload = errorChunkSize(text, false);
    const buf = Buffer.allocUnsafe(this.chunkHeader + payload);
    const h = encodeChunkHeader(buf, 0, this.extended, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req, req.offset, payload);
    encodeErrorChunk(buf, h, wire, text);
    this.send(buf, buf.length, undefined);
  }

  /** One BLOCK_STATUS (or BLOCK_STATUS_EXT) chunk for context `contextId`. */
  blockStatus(req: ParsedRequest, contextId: number, extents: readonly Extent[]): void {
    const payload = blockStatusPayloadSize(extents.length, this.extended);
    const buf = Buffer.allocUnsafe(this.chunkHeader + payload);
    const type = this.extended ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS;
    const h = encodeChunkHeader(buf, 0, this.extended, REPLY_FLAG_DONE, type, req, req.offset, payload);
    encodeBlockStatus(buf, h, contextId, extents, this.extended);
    this.send(buf, buf.length, undefined);
  }

  /**
   * One chunk per selected context that has extents (see encodeContextsReply); false, and
   * nothing sent, when none has any.
   */
  contextsBlockStatus(req: ParsedRequest, contexts: readonly string[], extents: Map<string, Extent[]>, reqOne: boolean): boolean {
    const buf = encodeContextsReply(this.extended, req, req.offset, contexts, extents, reqOne);
    if (!buf) return false;
    this.send(buf, buf.length, undefined);
    return true;
  }

  private send(buf: Buffer, length: number, pooled: Buffer | undefined, read?: ParsedRequest): void {
    const stream = this.stream;
    if (this.stopped || stream.destroyed || !stream.writable) {
      if (pooled) this.pool.release(pooled);
      if (read) this.events.readSent(read);
      return;
    }
    const view = length === buf.length ? buf : buf.subarray(0, length);
    if (pooled) {
      stream.write(view, () => {
        this.pool.release(pooled);
        if (read) this.events.readSent(read);
      });
    } else {
      stream.write(view);
    }
    // A socket's high-water mark (16 KiB) is below one read reply, so write() says "full" almost
    // always; stop reading new requests only once a real backlog of replies has built up.
    if (stream.writableLength > MAX_QUEUED_REPLY_BYTES) this.events.backlog();
  }
}
