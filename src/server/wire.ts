// Server-side encoders that write reply headers straight into a caller's buffer, so a reply
// header and its payload leave in one write with no intermediate copies. The pure codecs in
// src/protocol build fresh buffers; on the reply hot path we fill pooled ones instead.
import {
  EXTENDED_REPLY_MAGIC, EXTENDED_REPLY_SIZE, SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_MAGIC, STRUCTURED_REPLY_SIZE,
} from '../protocol/constants.js';

const TWO_32 = 0x1_0000_0000;

export function putU64(buf: Buffer, at: number, value: number): void {
  const hi = Math.floor(value / TWO_32);
  buf.writeUInt32BE(hi, at);
  buf.writeUInt32BE(value - hi * TWO_32, at + 4);
}

export function getU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
}

/** How replies are framed on this connection, fixed once transmission starts. */
export const ReplyStyle = { Simple: 0, Structured: 1, Extended: 2 } as const;
export type ReplyStyle = (typeof ReplyStyle)[keyof typeof ReplyStyle];

/** Size of one reply (chunk) header in a style. */
export function chunkHeaderSize(style: ReplyStyle): number {
  return style === ReplyStyle.Extended ? EXTENDED_REPLY_SIZE
    : style === ReplyStyle.Structured ? STRUCTURED_REPLY_SIZE : SIMPLE_REPLY_SIZE;
}

/** The 64-bit cookie travels as two opaque 32-bit halves: no bigint per request. */
export interface Cookie {
  hi: number;
  lo: number;
}

export function putSimpleReply(buf: Buffer, at: number, error: number, cookie: Cookie): void {
  buf.writeUInt32BE(SIMPLE_REPLY_MAGIC, at);
  buf.writeUInt32BE(error, at + 4);
  buf.writeUInt32BE(cookie.hi, at + 8);
  buf.writeUInt32BE(cookie.lo, at + 12);
}

/**
 * Writes a structured (compact) or extended chunk header. `offset` is the request's offset,
 * which only the extended header carries.
 */
export function putChunkHeader(
  buf: Buffer, at: number, style: ReplyStyle, flags: number, type: number,
  cookie: Cookie, offset: number, payloadLength: number,
): void {
  if (style === ReplyStyle.Extended) {
    buf.writeUInt32BE(EXTENDED_REPLY_MAGIC, at);
    buf.writeUInt16BE(flags, at + 4);
    buf.writeUInt16BE(type, at + 6);
    buf.writeUInt32BE(cookie.hi, at + 8);
    buf.writeUInt32BE(cookie.lo, at + 12);
    putU64(buf, at + 16, offset);
    putU64(buf, at + 24, payloadLength);
  } else {
    buf.writeUInt32BE(STRUCTURED_REPLY_MAGIC, at);
    buf.writeUInt16BE(flags, at + 4);
    buf.writeUInt16BE(type, at + 6);
    buf.writeUInt32BE(cookie.hi, at + 8);
    buf.writeUInt32BE(cookie.lo, at + 12);
    buf.writeUInt32BE(payloadLength, at + 16);
  }
}
