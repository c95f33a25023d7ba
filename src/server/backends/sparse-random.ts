// Read-only disk of random data runs scattered among holes, fully determined by a seed: the
// layout (where runs are) and the bytes (what is in them) come from seeded generators, so two
// servers with the same parameters serve the same disk. By default about 1% is data.
import { STATE_HOLE, STATE_ZERO } from '../../protocol/constants.js';
import { NbdError } from '../../protocol/errors.js';
import { ReadOnlyBackend } from './read-only.js';
import type { Extent } from './types.js';

const BLOCK = 4096;
const MAX_RUNS = 20_000_000;

export interface SparseRandomOptions {
  /** Percentage of the disk that holds data (0-100), default 1. */
  percent?: number;
  /** Seed of both layout and bytes, default 1. */
  seed?: number;
  /** Average length of a data run in bytes (rounded to 4 KiB blocks), default 64 KiB. */
  runLength?: number;
}

/** mulberry32: tiny, fast, good enough to make test data that does not compress. 32-bit values. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export class SparseRandomBackend extends ReadOnlyBackend {
  readonly kind = 'sparse-random';
  readonly sparse = true;

  /** Data runs as [start, end) byte offsets, ascending and disjoint (flattened pairs). */
  private readonly runs: Float64Array;
  private readonly seed: number;
  private readonly blockWords = new Uint32Array(BLOCK / 4);
  private readonly blockBytes = Buffer.from(this.blockWords.buffer);

  constructor(size: number, options: SparseRandomOptions = {}) {
    super(size);
    const percent = options.percent ?? 1;
    if (!(percent >= 0 && percent <= 100)) throw new NbdError('EINVAL', `sparse-random: percent must be 0-100, got ${percent}`);
    this.seed = (options.seed ?? 1) >>> 0;
    const runBlocks = Math.max(1, Math.round((options.runLength ?? 65536) / BLOCK));
    this.runs = layout(size, percent, runBlocks, this.seed);
  }

  read(into: Buffer, offset: number): void {
    into.fill(0);
    const end = offset + into.length;
    for (let r = this.firstRunEndingAfter(offset); r < this.runs.length; r += 2) {
      const runStart = this.runs[r]!;
      if (runStart >= end) break;
      const from = Math.max(runStart, offset);
      const to = Math.min(this.runs[r + 1]!, end);
      for (let block = Math.floor(from / BLOCK); block * BLOCK < to; block++) {
        this.fillBlock(block);
        const bStart = block * BLOCK;
        const a = Math.max(from, bStart);
        const b = Math.min(to, bStart + BLOCK);
        this.blockBytes.copy(into, a - offset, a - bStart, b - bStart);
      }
    }
  }

  extents(offset: number, length: number): Extent[] {
    const end = offset + length;
    const out: Extent[] = [];
    let pos = offset;
    for (let r = this.firstRunEndingAfter(offset); pos < end && out.length < 4096; r += 2) {
      const runStart = r < this.runs.length ? this.runs[r]! : end;
      if (pos < runStart) {
        const to = Math.min(runStart, end);
        out.push({ length: to - pos, flags: STATE_HOLE | STATE_ZERO });
        pos = to;
      }
      if (pos >= end || r >= this.runs.length) break;
      const to = Math.min(this.runs[r + 1]!, end);
      out.push({ length: to - pos, flags: 0 });
      pos = to;
    }
    return out;
  }

  /** Bytes of data (not hole) in the disk, for tests. */
  get dataBytes(): number {
    let sum = 0;
    for (let r = 0; r < this.runs.length; r += 2) sum += this.runs[r + 1]! - this.runs[r]!;
    return sum;
  }

  private fillBlock(block: number): void {
    // Each block's bytes depend only on (seed, block number), so reads may come in any order.
    const next = rng(Math.imul(this.seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(block >>> 0, 0xc2b2ae35) ^ Math.floor(block / 0x1_0000_0000));
    const w = this.blockWords;
    for (let i = 0; i < w.length; i++) w[i] = next();
  }

  /** Index (even) of the first run whose end is after `offset`. */
  private firstRunEndingAfter(offset: number): number {
    let lo = 0;
    let hi = this.runs.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.runs[mid * 2 + 1]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo * 2;
  }
}

function layout(size: number, percent: number, runBlocks: number, seed: number): Float64Array {
  const totalBlocks = Math.floor(size / BLOCK);
  if (percent === 0 || totalBlocks === 0) return new Float64Array(0);
  if (percent >= 100) return new Float64Array([0, size]);
  // Runs average runBlocks; gaps average so that runs make up `percent` of the disk.
  const gapBlocks = (runBlocks * (100 - percent)) / percent;
  const expectedRuns = totalBlocks / (runBlocks + gapBlocks);
  if (expectedRuns > MAX_RUNS) throw new NbdError('EINVAL', `sparse-random: disk too large for ${percent}% data`);
  const next = rng(seed);
  const out: number[] = [];
  let block = Math.floor(((next() / 0x1_0000_0000) * 2 * gapBlocks));
  while (block < totalBlocks) {
    const run = 1 + Math.floor((next() / 0x1_0000_0000) * (2 * runBlocks - 1));
    const end = Math.min(totalBlocks, block + run);
    out.push(block * BLOCK, end * BLOCK);
    block = end + 1 + Math.floor((next() / 0x1_0000_0000) * 2 * gapBlocks);
  }
  return Float64Array.from(out);
}
