// Reply headers in transmission: simple (16 B), structured chunk (20 B), extended (32 B).
// Encoders write into the caller's buffer (a server puts the header right before the payload
// and sends both at once); `decodeReplyHeader` fills a caller-owned object so the client's
// reader allocates nothing.
import {
  EXTENDED_REPLY_MAGIC, EXTENDED_REPLY_SIZE, SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE, STRUCTURED_REPLY_MAGIC,
  STRUCTURED_REPLY_SIZE,
} from './constants.js';
import { hex, needBytes, protocolError, readU64, writeU64 } from './bytes.js';
import { writeCookie, type Cookie } from './cookie.js';

/** How replies are framed on a connection, fixed once transmission starts. */
export const ReplyStyle = { Simple: 0, Structured: 1, Extended: 2 } as const;
export type ReplyStyle = (typeof ReplyStyle)[keyof typeof ReplyStyle];

export type ReplyKind = 'simple' | 'structured' | 'extended';

export interface ReplyHeader {
  kind: ReplyKind;
  cookie: number;
  /** Simple replies: the error value (0 = success). */
  error: number;
  /** Structured / extended: chunk flags and type. */
  flags: number;
  type: number;
  /** Extended only: the offset field (0 otherwise). */
  offset: number;
  /** Structured / extended: payload length that follows the header (0 for simple). */
  length: number;
}

export function newReplyHeader(): ReplyHeader {
  return { kind: 'simple', cookie: 0, error: 0, flags: 0, type: 0, offset: 0, length: 0 };
}

/** Header size implied by a reply magic; throws on an unknown magic. */
export function replyHeaderSize(magic: number): number {
  switch (magic) {
    case SIMPLE_REPLY_MAGIC: return SIMPLE_REPLY_SIZE;
    case STRUCTURED_REPLY_MAGIC: return STRUCTURED_REPLY_SIZE;
    case EXTENDED_REPLY_MAGIC: return EXTENDED_REPLY_SIZE;
    default: throw protocolError(`bad reply magic ${hex(magic)}`);
  }
}

/** magic u32, error u32, cookie u64. */
export function encodeSimpleReply(buf: Uint8Array, off: number, error: number, cookie: number | Cookie): number {
  const b = buf as Buffer;
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, off);
  b.writeUInt32BE(error >>> 0, off + 4);
  writeCookie(b, off + 8, cookie);
  return SIMPLE_REPLY_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, length u32. */
export function encodeStructuredReplyHeader(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number | Cookie, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeCookie(b, off + 8, cookie);
  b.writeUInt32BE(length, off + 16);
  return STRUCTURED_REPLY_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, offset u64, payload length u64. */
export function encodeExtendedReplyHeader(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number | Cookie, offset: number, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(EXTENDED_REPLY_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeCookie(b, off + 8, cookie);
  writeU64(b, off + 16, offset);
  writeU64(b, off + 24, length);
  return EXTENDED_REPLY_SIZE;
}

/** Size of one chunk header: extended (32 B) or structured (20 B). */
export function chunkHeaderSize(extended: boolean): number {
  return extended ? EXTENDED_REPLY_SIZE : STRUCTURED_REPLY_SIZE;
}

/**
 * Writes one chunk header, extended or structured. `offset` is the request's offset, which
 * only the extended header carries. Returns the header size.
 */
export function encodeChunkHeader(
  buf: Uint8Array, off: number, extended: boolean, flags: number, type: number, cookie: number | Cookie,
  offset: number, length: number,
): number {
  return extended
    ? encodeExtendedReplyHeader(buf, off, flags, type, cookie, offset, length)
    : encodeStructuredReplyHeader(buf, off, flags, type, cookie, length);
}

/**
 * Decodes whichever reply header starts at `off` (the buffer must hold the full header, whose
 * size `replyHeaderSize` gives from the first 4 bytes). Returns the header size consumed.
 */
export function decodeReplyHeader(buf: Uint8Array, off: number, into: ReplyHeader): number {
  needBytes(buf, off, 4, 'reply header');
  const b = buf as Buffer;
  const magic = b.readUInt32BE(off);
  const size = replyHeaderSize(magic);
  needBytes(buf, off, size, 'reply header');
  into.cookie = readU64(b, off + 8);
  if (magic === SIMPLE_REPLY_MAGIC) {
    into.kind = 'simple';
    into.error = b.readUInt32BE(off + 4);
    into.flags = 0;
    into.type = 0;
    into.offset = 0;
    into.length = 0;
  } else {
    into.kind = magic === STRUCTURED_REPLY_MAGIC ? 'structured' : 'extended';
    into.error = 0;
    into.flags = b.readUInt16BE(off + 4);
    into.type = b.readUInt16BE(off + 6);
    if (magic === STRUCTURED_REPLY_MAGIC) {
      into.offset = 0;
      into.length = b.readUInt32BE(off + 16);
    } else {
      into.offset = readU64(b, off + 16);
      into.length = readU64(b, off + 24);
    }
  }
  return size;
}
