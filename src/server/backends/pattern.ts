// Read-only disk whose every 8-byte word holds its own offset, big-endian (the same bytes as
// nbdkit's pattern plugin). Generating them is the whole cost of serving it, so the fill
// loop works on 32-bit words with a lookup table instead of byte-by-byte arithmetic.
import type { Backend, Extent } from './types.js';
import { NbdError } from '../../protocol/errors.js';

const TWO_32 = 0x1_0000_0000;
const BLOCK = 0x10000; // the low 16 bits of an offset index LOW16_SWAPPED

function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}

/** bswap32 of each 8-aligned value below 2^16: the varying bytes of a low word. */
const LOW16_SWAPPED = (() => {
  const t = new Uint32Array(BLOCK / 8);
  for (let i = 0; i < t.length; i++) t[i] = bswap32(i * 8);
  return t;
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Fills `words` (a Uint32Array over the target bytes) with the pattern starting at 8-aligned `offset`. */
function fillAligned(words: Uint32Array, offset: number): void {
  let w = 0;
  const count = words.length; // even: two 32-bit halves per 8-byte word
  let pos = offset;
  while (w < count) {
    const hi = Math.floor(pos / TWO_32);
    const lo = pos - hi * TWO_32;
    const hiSwapped = bswap32(hi);
    const base16 = lo & 0xffff0000;
    const highHalfSwapped = bswap32(base16);
    // Stay inside one 64 KiB block of offsets: there the two constant parts do not change.
    let i = (lo & 0xffff) >>> 3;
    const wordsLeftInBlock = (BLOCK / 8) - i;
    const n = Math.min(wordsLeftInBlock, (count - w) >>> 1);
    const end = w + n * 2;
    while (w < end) {
      words[w] = hiSwapped;
      words[w + 1] = highHalfSwapped | LOW16_SWAPPED[i]!;
      w += 2;
      i++;
    }
    pos += n * 8;
  }
}

/** Slow but general: any offset, any length, any alignment of the target buffer. */
function fillBytes(into: Buffer, offset: number): void {
  const start = offset - (offset % 8);
  const end = offset + into.length;
  const tmp = Buffer.allocUnsafe(Math.ceil((end - start) / 8) * 8);
  for (let p = start, at = 0; p < end; p += 8, at += 8) {
    const hi = Math.floor(p / TWO_32);
    tmp.writeUInt32BE(hi, at);
    tmp.writeUInt32BE(p - hi * TWO_32, at + 4);
  }
  tmp.copy(into, 0, offset - start, offset - start + into.length);
}

export function fillPattern(into: Buffer, offset: number): void {
  if (LITTLE_ENDIAN && offset % 8 === 0 && into.length % 8 === 0 && into.byteOffset % 4 === 0) {
    fillAligned(new Uint32Array(into.buffer, into.byteOffset, into.length >>> 2), offset);
  } else {
    fillBytes(into, offset);
  }
}

export class PatternBackend implements Backend {
  readonly kind = 'pattern';
  readonly writable = false;
  readonly canTrim = false;
  readonly canZero = false;
  readonly canFastZero = false;
  readonly canFlush = false;
  readonly canCache = true;
  readonly multiConn = true;
  readonly sparse = false;

  constructor(readonly size: number) {}

  read(into: Buffer, offset: number): void {
    fillPattern(into, offset);
  }

  write(): never { throw readOnly(); }
  zero(): never { throw readOnly(); }
  trim(): never { throw readOnly(); }
  flush(): void {}
  cache(): void {}
  close(): void {}

  extents(_offset: number, length: number): Extent[] {
    return [{ length, flags: 0 }];
  }
}

function readOnly(): NbdError {
  return new NbdError('EPERM', 'the pattern backend is read-only');
}
