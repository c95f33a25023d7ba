// Generated disks for the randomised nbdcopy and nbdinfo tests, as fast-check arbitraries: a
// layout of data, written zeroes and holes (unaligned pieces, block multiples, whole MiBs)
// over a disk of one of the given sizes, written to a sparse file. A failing disk shrinks to
// fewer, shorter pieces and a smaller size.
import fs from 'node:fs';
import fc from 'fast-check';
import { noise } from './files.js';

const MiB = 1 << 20;
/** Filesystem block: the unit of the block-multiple pieces. */
export const FS_BLOCK = 4096;
/** A layout repeats its pieces up to this many segments; the last one then runs to the end. */
const MAX_SEGMENTS = 64;

export type Segment = { kind: 'data' | 'zeroes' | 'hole'; length: number };

export interface Disk {
  size: number;
  /** Cover [0, size) in order. */
  segments: Segment[];
  /** Seeds the bytes of the data segments. */
  seed: number;
}

/** One piece: holes may run to 12 MiB, data and zeroes to 2 MiB. */
const piece: fc.Arbitrary<Segment> = fc.tuple(
  fc.oneof(
    { withCrossShrink: true },
    { weight: 2, arbitrary: fc.constant('data' as const) },
    { weight: 1, arbitrary: fc.constant('zeroes' as const) },
    { weight: 2, arbitrary: fc.constant('hole' as const) },
  ),
  fc.oneof(
    { withCrossShrink: true },
    fc.record({ unit: fc.constant(1), n: fc.integer({ min: 1, max: 4095 }) }), // unaligned
    fc.record({ unit: fc.constant(FS_BLOCK), n: fc.integer({ min: 1, max: 64 }) }), // to 256 KiB
    fc.record({ unit: fc.constant(MiB), n: fc.integer({ min: 1, max: 12 }) }),
  ),
).map(([kind, { unit, n }]) => ({ kind, length: unit * (unit === MiB && kind !== 'hole' ? 1 + ((n - 1) % 2) : n) }));

/** The pieces, repeated in order, cut to cover exactly [0, size). */
function fit(size: number, pieces: readonly Segment[]): Segment[] {
  const segments: Segment[] = [];
  for (let at = 0, i = 0; at < size; i++) {
    const p = pieces[i % pieces.length]!;
    const length = segments.length === MAX_SEGMENTS - 1 ? size - at : Math.min(size - at, p.length);
    segments.push({ kind: p.kind, length });
    at += length;
  }
  return segments;
}

/** A disk of one of `sizes` (the first is where a failure shrinks to). */
export function disk(sizes: readonly number[]): fc.Arbitrary<Disk> {
  return fc.record({
    size: fc.constantFrom(...sizes),
    pieces: fc.array(piece, { minLength: 1, maxLength: 32 }),
    seed: fc.nat(),
  }).map(({ size, pieces, seed }) => ({ size, segments: fit(size, pieces), seed }));
}

/** Writes `d` to `file`: data segments get noise, zero segments written zeroes, holes nothing. */
export function writeDisk(file: string, d: Disk): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, d.size);
    let at = 0;
    for (const [i, s] of d.segments.entries()) {
      if (s.kind !== 'hole') {
        const bytes = s.kind === 'data' ? noise(s.length, d.seed + i) : Buffer.alloc(s.length);
        fs.writeSync(fd, bytes, 0, bytes.length, at);
      }
      at += s.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}
