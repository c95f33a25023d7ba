// Read-only disk whose every 8-byte word holds its own offset, big-endian (the same bytes as
// nbdkit's pattern plugin). Generating them is the whole cost of serving it, so the fill
// loop works on 32-bit words with a lookup table instead of byte-by-byte arithmetic.
import { ReadOnlyBackend } from './read-only.js';
import type { Extent } from './types.js';

const TWO_32 = 0x1_0000_0000;
const BLOCK = 0x10000; // offsets in one 64 KiB-aligned block share all but their low 16 bits

function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}

/**
 * The pattern of the first 64 KiB as 32-bit words with the constant bytes left at zero: in any
 * 64 KiB-aligned block only the last two bytes of each word differ from the block's first word.
 */
const TEMPLATE = (() => {
  const t = new Uint32Array(BLOCK / 4);
  for (let i = 0; i < BLOCK / 8; i++) t[2 * i + 1] = bswap32(i * 8);
  return t;
})();

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Fills `words`/`halves` (views of the same 8-aligned target) with the pattern starting at
 * 8-aligned `offset`: copy the template, then store the block's constant bytes (the high
 * 32 bits, and bytes 4-5 of each word) only where they are not zero.
 */
function fillAligned(words: Uint32Array, halves: Uint16Array, offset: number): void {
  let w = 0;
  const count = words.length; // even: two 32-bit halves per 8-byte word
  let pos = offset;
  while (w < count) {
    const hi = Math.floor(pos / TWO_32);
    const lo = pos - hi * TWO_32;
    const hiSwapped = bswap32(hi);
    // Bytes 4 and 5 of the word, big-endian, read as one little-endian 16-bit value.
    const mid16 = ((lo >>> 24) & 0xff) | (((lo >>> 16) & 0xff) << 8);
    const first = (lo & 0xffff) >>> 3;
    const n = Math.min(BLOCK / 8 - first, (count - w) >>> 1);
    const end = w + n * 2;
    words.set(TEMPLATE.subarray(2 * first, 2 * first + n * 2), w);
    // Unrolled by hand: V8 does not, and these strided stores are the whole cost of serving.
    if (hiSwapped !== 0) {
      let k = w;
      for (; k + 6 < end; k += 8) {
        words[k] = hiSwapped; words[k + 2] = hiSwapped; words[k + 4] = hiSwapped; words[k + 6] = hiSwapped;
      }
      for (; k < end; k += 2) words[k] = hiSwapped;
    }
    if (mid16 !== 0) {
      let k = w * 2 + 2;
      const e = end * 2;
      for (; k + 28 < e; k += 32) {
        halves[k] = mid16; halves[k + 4] = mid16; halves[k + 8] = mid16; halves[k + 12] = mid16;
        halves[k + 16] = mid16; halves[k + 20] = mid16; halves[k + 24] = mid16; halves[k + 28] = mid16;
      }
      for (; k < e; k += 4) halves[k] = mid16;
    }
    w = end;
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
    fillAligned(
      new Uint32Array(into.buffer, into.byteOffset, into.length >>> 2),
      new Uint16Array(into.buffer, into.byteOffset, into.length >>> 1),
      offset,
    );
  } else {
    fillBytes(into, offset);
  }
}

export class PatternBackend extends ReadOnlyBackend {
  readonly kind = 'pattern';
  readonly sparse = false;

  read(into: Buffer, offset: number): void {
    fillPattern(into, offset);
  }

  extents(_offset: number, length: number): Extent[] {
    return [{ length, flags: 0 }];
  }
}
