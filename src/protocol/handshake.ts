// The first bytes of a connection: oldstyle handshake, newstyle greeting, client flags, and the
// reply to NBD_OPT_EXPORT_NAME. Pure encode/decode, no I/O.
import {
  CLISERV_MAGIC, EXPORT_NAME_REPLY_SHORT, EXPORT_NAME_REPLY_ZEROES, IHAVEOPT, NBDMAGIC,
  OLDSTYLE_HANDSHAKE_SIZE,
} from './constants.js';
import { hex, needBytes, protocolError, readMagic64, readU64, writeMagic64, writeU64 } from './bytes.js';

/** NBDMAGIC + second magic: enough to tell the two handshake styles apart. */
export const GREETING_PREFIX_SIZE = 16;
/** Newstyle greeting: NBDMAGIC, IHAVEOPT, 16-bit handshake flags. */
export const NEWSTYLE_GREETING_SIZE = 18;
export const CLIENT_FLAGS_SIZE = 4;

export type HandshakeStyle = 'oldstyle' | 'newstyle';

/** Reads the first 16 bytes a server sends and says which handshake follows. */
export function decodeGreetingPrefix(buf: Uint8Array, off = 0): HandshakeStyle {
  needBytes(buf, off, GREETING_PREFIX_SIZE, 'greeting');
  const magic = readMagic64(buf, off);
  if (magic !== NBDMAGIC) throw protocolError(`bad greeting magic ${hex(magic)}: not an NBD server`);
  const second = readMagic64(buf, off + 8);
  if (second === CLISERV_MAGIC) return 'oldstyle';
  if (second === IHAVEOPT) return 'newstyle';
  throw protocolError(`bad second greeting magic ${hex(second)}`);
}

export interface OldstyleHandshake {
  size: number;
  /** The size exactly, also past 2^53 where `size` rounds (absent when encoding). */
  exactSize?: bigint;
  /** 32-bit flags field; its low 16 bits are the transmission flags. */
  flags: number;
}

export function encodeOldstyleHandshake(buf: Uint8Array, off: number, h: OldstyleHandshake): number {
  needBytes(buf, off, OLDSTYLE_HANDSHAKE_SIZE, 'oldstyle handshake');
  writeMagic64(buf, off, NBDMAGIC);
  writeMagic64(buf, off + 8, CLISERV_MAGIC);
  writeU64(buf, off + 16, h.size);
  (buf as Buffer).writeUInt32BE(h.flags >>> 0, off + 24);
  buf.fill(0, off + 28, off + OLDSTYLE_HANDSHAKE_SIZE);
  return OLDSTYLE_HANDSHAKE_SIZE;
}

/** Decodes the full 152-byte oldstyle handshake (magics included). */
export function decodeOldstyleHandshake(buf: Uint8Array, off = 0): OldstyleHandshake {
  needBytes(buf, off, OLDSTYLE_HANDSHAKE_SIZE, 'oldstyle handshake');
  if (decodeGreetingPrefix(buf, off) !== 'oldstyle') throw protocolError('not an oldstyle handshake');
  return { size: readU64(buf, off + 16), exactSize: (buf as Buffer).readBigUInt64BE(off + 16), flags: (buf as Buffer).readUInt32BE(off + 24) };
}

export function encodeNewstyleGreeting(buf: Uint8Array, off: number, handshakeFlags: number): number {
  needBytes(buf, off, NEWSTYLE_GREETING_SIZE, 'newstyle greeting');
  writeMagic64(buf, off, NBDMAGIC);
  writeMagic64(buf, off + 8, IHAVEOPT);
  (buf as Buffer).writeUInt16BE(handshakeFlags & 0xffff, off + 16);
  return NEWSTYLE_GREETING_SIZE;
}

/** Decodes the 18-byte newstyle greeting and returns the handshake flags. */
export function decodeNewstyleGreeting(buf: Uint8Array, off = 0): number {
  needBytes(buf, off, NEWSTYLE_GREETING_SIZE, 'newstyle greeting');
  if (decodeGreetingPrefix(buf, off) !== 'newstyle') throw protocolError('not a newstyle greeting');
  return (buf as Buffer).readUInt16BE(off + 16);
}

export function encodeClientFlags(buf: Uint8Array, off: number, flags: number): number {
  needBytes(buf, off, CLIENT_FLAGS_SIZE, 'client flags');
  (buf as Buffer).writeUInt32BE(flags >>> 0, off);
  return CLIENT_FLAGS_SIZE;
}

export function decodeClientFlags(buf: Uint8Array, off = 0): number {
  needBytes(buf, off, CLIENT_FLAGS_SIZE, 'client flags');
  return (buf as Buffer).readUInt32BE(off);
}

export interface ExportNameReply {
  size: number;
  /** The size exactly, also past 2^53 where `size` rounds (absent when encoding). */
  exactSize?: bigint;
  transmissionFlags: number;
}

/** Size of the NBD_OPT_EXPORT_NAME reply: 10 bytes, plus 124 zeroes unless NO_ZEROES was agreed. */
export function exportNameReplySize(noZeroes: boolean): number {
  return EXPORT_NAME_REPLY_SHORT + (noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES);
}

export function encodeExportNameReply(buf: Uint8Array, off: number, r: ExportNameReply, noZeroes: boolean): number {
  const n = exportNameReplySize(noZeroes);
  needBytes(buf, off, n, 'export name reply');
  writeU64(buf, off, r.size);
  (buf as Buffer).writeUInt16BE(r.transmissionFlags & 0xffff, off + 8);
  if (!noZeroes) buf.fill(0, off + EXPORT_NAME_REPLY_SHORT, off + n);
  return n;
}

/** Decodes the first 10 bytes (size, flags); the caller skips the zeroes if any. */
export function decodeExportNameReply(buf: Uint8Array, off = 0): ExportNameReply {
  needBytes(buf, off, EXPORT_NAME_REPLY_SHORT, 'export name reply');
  return { size: readU64(buf, off), exactSize: (buf as Buffer).readBigUInt64BE(off), transmissionFlags: (buf as Buffer).readUInt16BE(off + 8) };
}
