// Cleans the extents a source returned for one window and makes zero runs cover whole blocks.
// A destination with a large minimum block size (a compressed qcow2 behind qemu-nbd: 64 KiB)
// may not be able to write a block twice, and a block that is half zero run, half data
// would otherwise get a zero request and then a write. Such a block is copied as data: the
// few zero bytes read from the source cost less than a read-modify-write of the destination.
import type { SourceExtent } from './endpoint.js';

function append(out: SourceExtent[], offset: number, length: number, zero: boolean): void {
  if (length <= 0) return;
  const last = out[out.length - 1];
  if (last !== undefined && last.zero === zero && last.offset + last.length === offset) last.length += length;
  else out.push({ offset, length, zero });
}

/**
 * The extents of [start, end) in order, contiguous, neighbours of one kind merged, starting
 * at `start` and ending at a multiple of `block` or at `end`. `start` and `end` must be
 * multiples of `block`, except `end` at the end of the source. A zero extent keeps only the
 * whole blocks it covers; the rest becomes data. What the source did not describe (it may
 * stop short) is left to the next window, or read as data up to the next block boundary.
 */
export function alignExtents(got: readonly SourceExtent[], start: number, end: number, block: number): SourceExtent[] {
  const out: SourceExtent[] = [];
  let at = start;
  // Keep only what lies in [start, end), in order and contiguous; a server that answers
  // nothing useful makes us treat the window as data rather than loop forever.
  for (const e of got) {
    if (e.offset !== at || e.length <= 0) break;
    const to = Math.min(e.offset + e.length, end);
    if (!e.zero || block === 1) {
      append(out, at, to - at, e.zero);
    } else {
      const zeroFrom = Math.ceil(at / block) * block;
      const zeroTo = to === end ? to : to - (to % block);
      if (zeroFrom >= zeroTo) {
        append(out, at, to - at, false);
      } else {
        append(out, at, zeroFrom - at, false);
        append(out, zeroFrom, zeroTo - zeroFrom, true);
        append(out, zeroTo, to - zeroTo, false);
      }
    }
    at = to;
    if (at >= end) break;
  }
  if (at === start) return [{ offset: start, length: end - start, zero: false }];
  if (at < end && at % block !== 0) append(out, at, Math.min(end, at - (at % block) + block) - at, false);
  return out;
}
