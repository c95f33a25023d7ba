// Transmission requests: compact (28 bytes) and extended (32 bytes, after EXTENDED_HEADERS).
// Encoders take positional arguments so the client's hot path allocates nothing.
import { COMPACT_REQUEST_SIZE, EXTENDED_REQUEST_MAGIC, EXTENDED_REQUEST_SIZE, REQUEST_MAGIC } from './constants.js';
import { hex, needBytes, protocolError, readU64, writeU64 } from './bytes.js';

export interface Request {
  flags: number;
  type: number;
  cookie: number;
  offset: number;
  length: number;
  extended: boolean;
}

export function requestSize(extended: boolean): number {
  return extended ? EXTENDED_REQUEST_SIZE : COMPACT_REQUEST_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, offset u64, length u32. */
export function encodeCompactRequest(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number, offset: number, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(REQUEST_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeU64(b, off + 8, cookie);
  writeU64(b, off + 16, offset);
  b.writeUInt32BE(length, off + 24);
  return COMPACT_REQUEST_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, offset u64, length u64. */
export function encodeExtendedRequest(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number, offset: number, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(EXTENDED_REQUEST_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeU64(b, off + 8, cookie);
  writeU64(b, off + 16, offset);
  writeU64(b, off + 24, length);
  return EXTENDED_REQUEST_SIZE;
}

export function encodeRequest(buf: Uint8Array, off: number, r: Omit<Request, 'extended'>, extended: boolean): number {
  return extended
    ? encodeExtendedRequest(buf, off, r.flags, r.type, r.cookie, r.offset, r.length)
    : encodeCompactRequest(buf, off, r.flags, r.type, r.cookie, r.offset, r.length);
}

/**
 * Decodes a request. `extended` says what was negotiated; the magic must agree with it.
 * Cookies are returned as numbers: exact below 2^53 (our client and libnbd count up from 1).
 */
export function decodeRequest(buf: Uint8Array, off: number, extended: boolean, into?: Request): Request {
  const size = requestSize(extended);
  needBytes(buf, off, size, 'request');
  const b = buf as Buffer;
  const magic = b.readUInt32BE(off);
  const want = extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC;
  if (magic !== want) throw protocolError(`bad request magic ${hex(magic)}, expected ${hex(want)}`);
  const r = into ?? { flags: 0, type: 0, cookie: 0, offset: 0, length: 0, extended };
  r.flags = b.readUInt16BE(off + 4);
  r.type = b.readUInt16BE(off + 6);
  r.cookie = readU64(b, off + 8);
  r.offset = readU64(b, off + 16);
  r.length = extended ? readU64(b, off + 24) : b.readUInt32BE(off + 24);
  r.extended = extended;
  return r;
}
