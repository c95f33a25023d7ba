// Length-prefixed UTF-8 strings as options use them (32-bit length + bytes).
import { MAX_STRING } from './constants.js';
import { needBytes, protocolError } from './bytes.js';

export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Writes u32 length + UTF-8 bytes at `off`; returns bytes written. */
export function writeString32(buf: Uint8Array, off: number, s: string): number {
  const b = buf as Buffer;
  const n = b.write(s, off + 4, 'utf8');
  b.writeUInt32BE(n, off);
  return 4 + n;
}

export interface StringRead {
  value: string;
  /** Offset just after the string. */
  next: number;
}

/** Reads u32 length + UTF-8 bytes, bounded by `end` and the protocol's 4096-byte string limit. */
export function readString32(buf: Uint8Array, off: number, end: number, what: string): StringRead {
  needBytes(buf, off, 4, what);
  const n = (buf as Buffer).readUInt32BE(off);
  if (n > MAX_STRING) throw protocolError(`${what}: string length ${n} exceeds ${MAX_STRING}`);
  if (off + 4 + n > end) throw protocolError(`${what}: string length ${n} runs past the payload`);
  return { value: (buf as Buffer).toString('utf8', off + 4, off + 4 + n), next: off + 4 + n };
}
