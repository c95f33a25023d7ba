// Payloads of structured / extended reply chunks: OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS,
// BLOCK_STATUS_EXT, ERROR and ERROR_OFFSET. Offsets in `buf` point at the payload start.
import { needBytes, protocolError, readU64, writeU64 } from './bytes.js';

// ---- OFFSET_DATA: offset u64, then data ----

export const OFFSET_DATA_HEADER_SIZE = 8;

export function encodeOffsetDataHeader(buf: Uint8Array, off: number, offset: number): number {
  writeU64(buf, off, offset);
  return OFFSET_DATA_HEADER_SIZE;
}

export function decodeOffsetDataHeader(buf: Uint8Array, off: number): number {
  needBytes(buf, off, OFFSET_DATA_HEADER_SIZE, 'OFFSET_DATA');
  return readU64(buf, off);
}

// ---- OFFSET_HOLE: offset u64, size u32 (or u64 when extended headers are on) ----

export interface Hole {
  offset: number;
  size: number;
}

export function offsetHoleSize(extended: boolean): number {
  return extended ? 16 : 12;
}

export function encodeOffsetHole(buf: Uint8Array, off: number, offset: number, size: number, extended: boolean): number {
  writeU64(buf, off, offset);
  if (extended) writeU64(buf, off + 8, size);
  else (buf as Buffer).writeUInt32BE(size, off + 8);
  return offsetHoleSize(extended);
}

/** `payloadLength` is 12 (u32 size) or 16 (u64 size, extended headers). */
export function decodeOffsetHole(buf: Uint8Array, off: number, payloadLength: number, into?: Hole): Hole {
  if (payloadLength !== 12 && payloadLength !== 16) {
    throw protocolError(`OFFSET_HOLE payload length ${payloadLength}, expected 12 or 16`);
  }
  needBytes(buf, off, payloadLength, 'OFFSET_HOLE');
  const h = into ?? { offset: 0, size: 0 };
  h.offset = readU64(buf, off);
  h.size = payloadLength === 16 ? readU64(buf, off + 8) : (buf as Buffer).readUInt32BE(off + 8);
  if (h.size === 0) throw protocolError('OFFSET_HOLE with a zero size');
  return h;
}

// ---- BLOCK_STATUS: context id u32, N x (length u32, flags u32) ----
// ---- BLOCK_STATUS_EXT: context id u32, count u32, N x (length u64, flags u64) ----

/**
 * One extent of a meta context: `length` bytes with status `flags` (base:allocation: HOLE=1,
 * ZERO=2). Client and server speak of extents in this one shape.
 */
export interface Extent {
  length: number;
  flags: number;
}

/** An extent as one block status descriptor carries it (the same shape). */
export type BlockStatusExtent = Extent;

export interface BlockStatusChunk {
  contextId: number;
  extents: BlockStatusExtent[];
}

export function blockStatusPayloadSize(count: number, extended: boolean): number {
  return extended ? 8 + 16 * count : 4 + 8 * count;
}

export function encodeBlockStatus(
  buf: Uint8Array, off: number, contextId: number, extents: readonly BlockStatusExtent[], extended: boolean,
): number {
  const b = buf as Buffer;
  b.writeUInt32BE(contextId >>> 0, off);
  let p = off + 4;
  if (extended) {
    b.writeUInt32BE(extents.length, p);
    p += 4;
    for (const e of extents) {
      writeU64(b, p, e.length);
      writeU64(b, p + 8, e.flags);
      p += 16;
    }
  } else {
    for (const e of extents) {
      b.writeUInt32BE(e.length, p);
      b.writeUInt32BE(e.flags >>> 0, p + 4);
      p += 8;
    }
  }
  return p - off;
}

/** Decodes a BLOCK_STATUS (extended=false) or BLOCK_STATUS_EXT (extended=true) payload. */
export function decodeBlockStatus(buf: Uint8Array, off: number, payloadLength: number, extended: boolean): BlockStatusChunk {
  needBytes(buf, off, payloadLength, 'BLOCK_STATUS');
  const b = buf as Buffer;
  const extents: BlockStatusExtent[] = [];
  if (!extended) {
    if (payloadLength < 12 || (payloadLength - 4) % 8 !== 0) {
      throw protocolError(`BLOCK_STATUS payload length ${payloadLength} is not 4 + a positive multiple of 8`);
    }
    for (let p = off + 4; p < off + payloadLength; p += 8) {
      extents.push({ length: b.readUInt32BE(p), flags: b.readUInt32BE(p + 4) });
    }
  } else {
    if (payloadLength < 24 || (payloadLength - 8) % 16 !== 0) {
      throw protocolError(`BLOCK_STATUS_EXT payload length ${payloadLength} is not 8 + a positive multiple of 16`);
    }
    const count = b.readUInt32BE(off + 4);
    if (count * 16 + 8 !== payloadLength) {
      throw protocolError(`BLOCK_STATUS_EXT says ${count} descriptors but carries ${(payloadLength - 8) / 16}`);
    }
    for (let p = off + 8; p < off + payloadLength; p += 16) {
      extents.push({ length: readU64(b, p), flags: readU64(b, p + 8) });
    }
  }
  for (const e of extents) if (e.length === 0) throw protocolError('block status extent of length 0');
  return { contextId: b.readUInt32BE(off), extents };
}

// ---- ERROR / ERROR_OFFSET: error u32, message length u16, message, [offset u64] ----

export interface ErrorChunk {
  error: number;
  message: string;
  /** Present for ERROR_OFFSET. */
  offset?: number;
}

export function errorChunkSize(message: string, withOffset: boolean): number {
  return 6 + Buffer.byteLength(message, 'utf8') + (withOffset ? 8 : 0);
}

export function encodeErrorChunk(buf: Uint8Array, off: number, error: number, message: string, offset?: number): number {
  const b = buf as Buffer;
  b.writeUInt32BE(error >>> 0, off);
  const n = b.write(message, off + 6, 'utf8');
  b.writeUInt16BE(n, off + 4);
  let p = off + 6 + n;
  if (offset !== undefined) {
    writeU64(b, p, offset);
    p += 8;
  }
  return p - off;
}

/** Decodes an error chunk; `withOffset` for ERROR_OFFSET. Unknown error types decode like ERROR. */
export function decodeErrorChunk(buf: Uint8Array, off: number, payloadLength: number, withOffset: boolean): ErrorChunk {
  if (payloadLength < 6) throw protocolError(`error chunk payload length ${payloadLength} is below 6`);
  needBytes(buf, off, payloadLength, 'error chunk');
  const b = buf as Buffer;
  const error = b.readUInt32BE(off);
  const msgLen = b.readUInt16BE(off + 4);
  const tail = withOffset ? 8 : 0;
  if (6 + msgLen + tail > payloadLength) {
    throw protocolError(`error chunk message length ${msgLen} does not fit payload length ${payloadLength}`);
  }
  const message = b.toString('utf8', off + 6, off + 6 + msgLen);
  const chunk: ErrorChunk = { error, message };
  if (withOffset) chunk.offset = readU64(b, off + 6 + msgLen);
  return chunk;
}
