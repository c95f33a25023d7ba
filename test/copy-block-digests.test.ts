// Block hashes (--blkhash): libnbd 1.24's known values, and ranges fed in any order, cut
// anywhere, holes given as zero ranges, against a tiny independent reference.
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BlockDigests, CombinedHash, blockHashOf, type BlockHashSpec, type HashAlgorithm,
} from '../src/copy/block-digests.js';
import { generator } from './helpers/generated-disks.js';

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
function hashByRanges(image: Buffer, spec: BlockHashSpec, ranges: Array<[number, number, boolean]>, knownSize: boolean): string {
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

describe('block hash', () => {
  it('gives libnbd 1.24\'s known values', () => {
    const sha256 = { algorithm: 'sha256', blockSize: 65536 } as const;
    expect(blockHashOf(Buffer.alloc(0), sha256)).toBe('af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc');
    expect(blockHashOf(Buffer.from('hello'), { algorithm: 'md5', blockSize: 65536 })).toBe('f741ac9ce55f5325906bb14e9c05d467');
    expect(blockHashOf(Buffer.from('hello'), { algorithm: 'md5', blockSize: 4 })).toBe('8262896de34125dec173722c920e8bd0');
    expect(blockHashOf(Buffer.from('12345678'.repeat(512 * 256)), sha256))
      .toBe('cbb388edd25e567b85f504c7b345497f9fb4f6bbf4e39768809184b9f9e678f8');
  });

  it('matches the reference for ranges in any order, cut anywhere, with holes', () => {
    const algorithms: HashAlgorithm[] = ['md5', 'sha1', 'sha256', 'sha512'];
    for (let seed = 1; seed <= 30; seed++) {
      const r = generator(seed);
      const blockSize = 2 ** (2 + Math.floor(r() * 11));
      const size = Math.floor(r() * 120_000);
      const image = Buffer.alloc(size);
      // Data islands between zeroes, some of them zero themselves.
      const runs: Array<[number, number, boolean]> = [];
      for (let at = 0; at < size;) {
        const len = Math.min(size - at, 1 + Math.floor(r() * (r() < 0.5 ? 64 : 40_000)));
        const zero = r() < 0.4;
        if (!zero && r() < 0.8) crypto.randomFillSync(image, at, len);
        // Zero ranges are ranges the source says are holes; mark some data ranges zero-filled too.
        runs.push([at, len, zero]);
        at += len;
      }
      // Cut further at random points, then shuffle.
      const cut: Array<[number, number, boolean]> = [];
      for (const [o, l, z] of runs) {
        let at = o;
        while (at < o + l) {
          const len = Math.min(o + l - at, 1 + Math.floor(r() * 30_000));
          cut.push([at, len, z]);
          at += len;
        }
      }
      for (let i = cut.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [cut[i], cut[j]] = [cut[j]!, cut[i]!];
      }
      const alg = algorithms[seed % 4]!;
      const want = reference(image, alg, blockSize);
      expect(hashByRanges(image, { algorithm: alg, blockSize }, cut, true), `seed ${seed}`).toBe(want);
      // A stream: ranges in order, size known only at the end.
      const inOrder = [...cut].sort((a, b) => a[0] - b[0]);
      expect(hashByRanges(image, { algorithm: alg, blockSize }, inOrder, false), `seed ${seed} (stream)`).toBe(want);
    }
  });

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
