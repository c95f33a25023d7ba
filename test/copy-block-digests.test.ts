// Block hashes (--blkhash): libnbd 1.24's known values, and ranges fed in any order, cut
// anywhere, holes given as zero ranges, against a tiny independent reference.
import crypto from 'node:crypto';
import { fc, it } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import {
  BlockDigests, CombinedHash, blockHashOf, type BlockHashSpec, type HashAlgorithm,
} from '../src/copy/block-digests.js';
import { noise } from './helpers/files.js';
import { chance, property } from './helpers/property.js';

/** The definition, written plainly: hash each block, then the digests and le64(size). */
function reference(image: Buffer, algorithm: HashAlgorithm, blockSize: number): string {
  const outer = crypto.createHash(algorithm);
  for (let at = 0; at < image.length; at += blockSize) {
    outer.update(crypto.createHash(algorithm).update(image.subarray(at, at + blockSize)).digest());
  }
  const le = Buffer.alloc(8);
  le.writeBigUInt64LE(BigInt(image.length));
  return outer.update(le).digest('hex');
}

/** Feeds `image` as the given ranges, in the given order; zero ranges are never looked at. */
function hashByRanges(image: Buffer, spec: BlockHashSpec, ranges: readonly Range[], knownSize: boolean): string {
  let combined: CombinedHash | undefined;
  const d = new BlockDigests(spec, knownSize ? image.length : undefined, { blocks: (f, c, g) => combined!.blocks(f, c, g) });
  combined = new CombinedHash(spec, d.zeroDigest);
  for (const [offset, length, zero] of ranges) {
    if (zero) d.zero(offset, length);
    else d.data(offset, Buffer.from(image.subarray(offset, offset + length)));
  }
  d.finish(image.length);
  return combined.digest(image.length);
}

type Range = [offset: number, length: number, zero: boolean];

/**
 * An image of data islands between zeroes (some zero themselves), the ranges a source would
 * give for it (zero ranges are holes the source reports), cut further, and those ranges shuffled.
 */
const hashCase = fc.record({
  algorithm: fc.constantFrom<HashAlgorithm>('md5', 'sha1', 'sha256', 'sha512'),
  blockSize: fc.integer({ min: 2, max: 12 }).map((n) => 2 ** n),
  runs: fc.array(fc.record({
    length: fc.oneof({ withCrossShrink: true }, fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 40_000 })),
    zero: chance(0.4),
    // A data range may hold zeroes too.
    filled: chance(0.8),
    seed: fc.nat(),
  }), { maxLength: 24 }),
  cuts: fc.array(fc.integer({ min: 1, max: 30_000 }), { minLength: 1, maxLength: 8 }),
  swaps: fc.array(fc.nat(), { maxLength: 64 }),
}).map((g) => {
  const image = Buffer.alloc(g.runs.reduce((n, r) => n + r.length, 0));
  const ranges: Range[] = [];
  let at = 0;
  let k = 0;
  for (const r of g.runs) {
    if (!r.zero && r.filled) noise(r.length, r.seed).copy(image, at);
    for (let o = at; o < at + r.length;) {
      const length = Math.min(at + r.length - o, g.cuts[k++ % g.cuts.length]!);
      ranges.push([o, length, r.zero]);
      o += length;
    }
    at += r.length;
  }
  const order = [...ranges];
  for (let i = order.length - 1; i > 0 && g.swaps.length > 0; i--) {
    const j = g.swaps[i % g.swaps.length]! % (i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return { algorithm: g.algorithm, blockSize: g.blockSize, image, ranges, order };
});

type HashCase = typeof hashCase extends fc.Arbitrary<infer T> ? T : never;

const HASH_NAME = 'matches the reference for ranges in any order, cut anywhere, with holes';
const hashCases = property<[HashCase]>({ file: import.meta.url, name: HASH_NAME, runs: 30, caseMs: 10_000, biased: true });

describe('block hash', () => {
  it('gives libnbd 1.24\'s known values', () => {
    const sha256 = { algorithm: 'sha256', blockSize: 65536 } as const;
    expect(blockHashOf(Buffer.alloc(0), sha256)).toBe('af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc');
    expect(blockHashOf(Buffer.from('hello'), { algorithm: 'md5', blockSize: 65536 })).toBe('f741ac9ce55f5325906bb14e9c05d467');
    expect(blockHashOf(Buffer.from('hello'), { algorithm: 'md5', blockSize: 4 })).toBe('8262896de34125dec173722c920e8bd0');
    expect(blockHashOf(Buffer.from('12345678'.repeat(512 * 256)), sha256))
      .toBe('cbb388edd25e567b85f504c7b345497f9fb4f6bbf4e39768809184b9f9e678f8');
  });

  it.prop([hashCase], hashCases.parameters)(HASH_NAME, ({ algorithm, blockSize, image, ranges, order }) => {
    const want = reference(image, algorithm, blockSize);
    expect(hashByRanges(image, { algorithm, blockSize }, order, true)).toBe(want);
    // A stream: ranges in order, size known only at the end.
    expect(hashByRanges(image, { algorithm, blockSize }, ranges, false), 'stream').toBe(want);
  }, hashCases.timeout);

  it('hashes a hole block once, whatever the size of the hole', () => {
    const spec = { algorithm: 'sha256', blockSize: 65536 } as const;
    const size = 64 * 2 ** 30;
    const seen: number[] = [];
    let combined: CombinedHash | undefined;
    const d = new BlockDigests(spec, size, {
      blocks: (f, c, g) => {
        seen.push(c);
        combined!.blocks(f, c, g);
      },
    });
    combined = new CombinedHash(spec, d.zeroDigest);
    const hashed = crypto.createHash;
    d.zero(size / 2, size / 2);
    d.zero(0, size / 2);
    d.finish(size);
    expect(seen).toEqual([size / 2 / 65536, size / 2 / 65536]);
    // The same as 1 Mi copies of H(64 KiB of zeroes) followed by le64(size).
    const zero = crypto.createHash('sha256').update(Buffer.alloc(65536)).digest();
    const outer = hashed('sha256');
    for (let i = 0; i < size / 65536; i++) outer.update(zero);
    const le = Buffer.alloc(8);
    le.writeBigUInt64LE(BigInt(size));
    expect(combined.digest(size)).toBe(outer.update(le).digest('hex'));
  });

  it('refuses to finish when part of the image was never covered', () => {
    const d = new BlockDigests({ algorithm: 'md5', blockSize: 4 }, 12, { blocks: () => {} });
    d.data(0, Buffer.from('abcd'));
    d.data(8, Buffer.from('ijkl'));
    expect(() => d.finish(12)).toThrow(/3 blocks expected, 1 complete/);
  });
});
