// Transmission requests: compact (28 bytes) and extended (32 bytes, after EXTENDED_HEADERS).
// Encoders take positional arguments and decoders fill caller-owned objects, so neither side's
// hot path allocates.
import {
  CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, COMPACT_REQUEST_SIZE, EXTENDED_REQUEST_MAGIC, EXTENDED_REQUEST_SIZE, REQUEST_MAGIC,
} from './constants.js';
import { hex, needBytes, protocolError, readU64, writeU64 } from './bytes.js';
import { cookieNumber, readCookie, writeCookie, type Cookie } from './cookie.js';

/** A request with its cookie as a number (see decodeRequestHeader for any 64-bit cookie). */
export interface Request {
  flags: number;
  type: number;
  cookie: number;
  offset: number;
  length: number;
  extended: boolean;
}

/** A request header as a server receives it: the cookie stays two opaque halves. */
export interface RequestHeader extends Cookie {
  flags: number;
  type: number;
  offset: number;
  length: number;
}

export function requestSize(extended: boolean): number {
  return extended ? EXTENDED_REQUEST_SIZE : COMPACT_REQUEST_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, offset u64, length u32. */
export function encodeCompactRequest(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number | Cookie, offset: number, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(REQUEST_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeCookie(b, off + 8, cookie);
  writeU64(b, off + 16, offset);
  b.writeUInt32BE(length, off + 24);
  return COMPACT_REQUEST_SIZE;
}

/** magic u32, flags u16, type u16, cookie u64, offset u64, length u64. */
export function encodeExtendedRequest(
  buf: Uint8Array, off: number, flags: number, type: number, cookie: number | Cookie, offset: number, length: number,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(EXTENDED_REQUEST_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  writeCookie(b, off + 8, cookie);
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
 * Decodes the request header at `off` into `into`. `extended` says what was negotiated; the
 * magic must agree with it. Offsets and lengths past 2^53 lose precision but stay far beyond
 * any export size, so they still fail a receiver's bounds checks.
 */
export function decodeRequestHeader(buf: Uint8Array, off: number, extended: boolean, into: RequestHeader): void {
  needBytes(buf, off, requestSize(extended), 'request');
  const b = buf as Buffer;
  const magic = b.readUInt32BE(off);
  const want = extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC;
  if (magic !== want) throw protocolError(`bad request magic ${hex(magic)}, expected ${hex(want)}`);
  into.flags = b.readUInt16BE(off + 4);
  into.type = b.readUInt16BE(off + 6);
  readCookie(b, off + 8, into);
  into.offset = readU64(b, off + 16);
  into.length = extended ? readU64(b, off + 24) : b.readUInt32BE(off + 24);
}

/** Whether `length` bytes of payload follow the header: a WRITE, and with extended headers any request flagged PAYLOAD_LEN. */
export function requestHasPayload(type: number, flags: number, extended: boolean): boolean {
  return type === CMD_WRITE || (extended && (flags & CMD_FLAG_PAYLOAD_LEN) !== 0);
}

/**
 * Decodes a request with its cookie as a number: exact below 2^53 (our client and libnbd
 * count up from 1).
 */
export function decodeRequest(buf: Uint8Array, off: number, extended: boolean, into?: Request): Request {
  const h: RequestHeader = { flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offset: 0, length: 0 };
  decodeRequestHeader(buf, off, extended, h);
  const r = into ?? { flags: 0, type: 0, cookie: 0, offset: 0, length: 0, extended };
  r.flags = h.flags;
  r.type = h.type;
  r.cookie = cookieNumber(h);
  r.offset = h.offset;
  r.length = h.length;
  r.extended = extended;
  return r;
}

/**
 * The payload of a filtered NBD_CMD_BLOCK_STATUS (sent with NBD_CMD_FLAG_PAYLOAD_LEN, only with
 * extended headers): the effect length the header would otherwise carry, and the ids of the
 * meta contexts the reply is limited to.
 */
export interface BlockStatusFilter {
  length: number;
  ids: number[];
}

/** Bytes of a filtered block status payload naming `count` contexts: 64-bit length, 32-bit ids. */
export function blockStatusFilterSize(count: number): number {
  return 8 + 4 * count;
}

export function encodeBlockStatusFilter(buf: Uint8Array, off: number, length: number, ids: readonly number[]): number {
  writeU64(buf, off, length);
  const b = buf as Buffer;
  for (let i = 0; i < ids.length; i++) b.writeUInt32BE(ids[i]!, off + 8 + 4 * i);
  return blockStatusFilterSize(ids.length);
}

/** Decodes a whole filtered block status payload; EPROTO unless it is 8 + 4n bytes. */
export function decodeBlockStatusFilter(buf: Uint8Array): BlockStatusFilter {
  if (buf.length < 8 || (buf.length - 8) % 4 !== 0) throw protocolError(`block status payload of ${buf.length} bytes is not 8 + 4n`);
  const b = buf as Buffer;
  const ids: number[] = [];
  for (let p = 8; p < buf.length; p += 4) ids.push(b.readUInt32BE(p));
  return { length: readU64(buf, 0), ids };
}
