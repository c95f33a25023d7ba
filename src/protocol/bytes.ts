// Big-endian 64-bit fields as JS numbers. Offsets, lengths and cookies stay below 2^53 in
// practice, so two 32-bit halves avoid bigint on the hot path.
import { NbdError } from './errors.js';

const TWO_32 = 0x1_0000_0000;

export function readU64(buf: Uint8Array, off: number): number {
  const b = buf as Buffer;
  return b.readUInt32BE(off) * TWO_32 + b.readUInt32BE(off + 4);
}

export function writeU64(buf: Uint8Array, off: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new NbdError('EOVERFLOW', `value ${value} does not fit an unsigned 64-bit field as a safe integer`);
  }
  const b = buf as Buffer;
  const hi = Math.floor(value / TWO_32);
  b.writeUInt32BE(hi, off);
  b.writeUInt32BE(value - hi * TWO_32, off + 4);
}

/** Writes a bigint magic (the 64-bit handshake constants) at `off`. */
export function writeMagic64(buf: Uint8Array, off: number, magic: bigint): void {
  (buf as Buffer).writeBigUInt64BE(magic, off);
}

export function readMagic64(buf: Uint8Array, off: number): bigint {
  return (buf as Buffer).readBigUInt64BE(off);
}

export function protocolError(message: string): NbdError {
  return new NbdError('EPROTO', message);
}

/** Checks that `need` bytes are available at `off`; a short structure is a protocol violation. */
export function needBytes(buf: Uint8Array, off: number, need: number, what: string): void {
  if (off < 0 || off + need > buf.length) {
    throw protocolError(`${what}: need ${need} bytes at offset ${off}, have ${buf.length - off}`);
  }
}

export function hex(n: number | bigint): string {
  return '0x' + n.toString(16);
}
