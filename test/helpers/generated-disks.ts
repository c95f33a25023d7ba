// Seeded random disks for the randomised nbdcopy tests: a layout of data, written zeroes and
// holes (unaligned pieces, block multiples, whole MiBs), written to a sparse file. The same
// seed gives the same disks on every machine, so a failing case replays exactly.
import fs from 'node:fs';
import { rng } from '../../src/server/backends/sparse-random.js';
import { noise } from './files.js';

const MiB = 1 << 20;
/** Filesystem block: the unit of the block-multiple pieces. */
export const FS_BLOCK = 4096;

/** The server's sparse-random generator (mulberry32), scaled to [0, 1): the same everywhere. */
export function generator(seed: number): () => number {
  const next = rng(seed);
  return () => next() / 4294967296;
}

/** `count` cases made one after another from one generator seeded with `seed`. */
export function seededCases<T>(seed: number, count: number, make: (index: number, random: () => number) => T): T[] {
  const random = generator(seed);
  return Array.from({ length: count }, (_, i) => make(i, random));
}

/** pick / chance over one generator. */
export function chooser(random: () => number): { pick: <T>(items: readonly T[]) => T; chance: (p: number) => boolean } {
  return {
    pick: <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!,
    chance: (p: number): boolean => random() < p,
  };
}

export type Segment = { kind: 'data' | 'zeroes' | 'hole'; length: number };

/** A layout covering [0, size): holes may run to 12 MiB, data and zeroes to 2 MiB. */
export function randomLayout(size: number, random: () => number): Segment[] {
  const { pick } = chooser(random);
  const segments: Segment[] = [];
  for (let at = 0; at < size;) {
    const kind = pick(['data', 'data', 'zeroes', 'hole', 'hole'] as const);
    const length = Math.min(size - at, pick([
      1 + Math.floor(random() * 4095), // unaligned
      FS_BLOCK * (1 + Math.floor(random() * 64)), // up to 256 KiB, block multiples
      MiB * (1 + Math.floor(random() * (kind === 'hole' ? 12 : 2))),
    ]));
    segments.push({ kind, length });
    at += length;
  }
  return segments;
}

/** "d4097,h1024,z512,...", cut to `max` characters, for test names. */
export function describeLayout(segments: Segment[], max = 60): string {
  const layout = segments.map((s) => `${s.kind[0]}${s.length}`).join(',');
  return layout.length > max ? `${layout.slice(0, max)}...` : layout;
}

/** Writes the layout to `file` (`size` bytes): data gets noise, zero segments written zeroes. */
export function writeDisk(file: string, size: number, segments: Segment[], seed: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    let at = 0;
    for (const [i, s] of segments.entries()) {
      if (s.kind !== 'hole') {
        const bytes = s.kind === 'data' ? noise(s.length, seed + i) : Buffer.alloc(s.length);
        fs.writeSync(fd, bytes, 0, bytes.length, at);
      }
      at += s.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}
