// The integrity observers without a server: the checkpoint observer, the dirty-bitmap range
// source and verification's read-back, driven by hand the way a copy calls them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DoneRanges, type RangeList } from '../src/copy/done-ranges.js';
import { readCheckpoint, type CopyIdentity } from '../src/copy/checkpoint-journal.js';
import { DirtyBitmapRanges } from '../src/copy/dirty-bitmap.js';
import { BlockHashObserver } from '../src/copy/observers/block-hash.js';
import { VerifyObserver } from '../src/copy/observers/verify.js';
import { CheckpointObserver } from '../src/copy/observers/checkpoint.js';
import type { ContextExtent, Endpoint, SourceExtent } from '../src/copy/endpoint.js';
import { makeTempDir } from './helpers/temp.js';

const dir = makeTempDir('nbd-integrity-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An in-memory endpoint; `holes` are reported as zero extents, `dirty` as dirty-bitmap extents. */
function memoryEndpoint(bytes: Buffer, holes: RangeList = [], dirty?: RangeList): Endpoint & { reads: number } {
  const extentsOf = (list: RangeList, offset: number, length: number): Array<{ offset: number; length: number; on: boolean }> => {
    const out: Array<{ offset: number; length: number; on: boolean }> = [];
    for (let at = offset; at < offset + length;) {
      const inside = list.find(([s, e]) => s <= at && at < e);
      const next = inside ? Math.min(inside[1], offset + length)
        : Math.min(offset + length, ...list.map(([s]) => s).filter((s) => s > at));
      out.push({ offset: at, length: next - at, on: inside !== undefined });
      at = next;
    }
    return out;
  };
  const e = {
    name: 'memory', size: bytes.length, sequential: false, preferredBlockSize: 4096, minimumBlockSize: 1,
    maximumBlockSize: 2 ** 32 - 1, connections: 2, maxConnections: 2, canExtents: true, isZero: false, canZero: true,
    discards: false, reads: 0,
    metaContexts: dirty ? ['qemu:dirty-bitmap:b0'] : [],
    async read(buffer: Uint8Array, offset: number): Promise<number> {
      e.reads += buffer.length;
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      buffer.set(bytes.subarray(offset, offset + buffer.length));
      return buffer.length;
    },
    async write(): Promise<void> {},
    async zero(): Promise<void> {},
    async extents(offset: number, length: number): Promise<SourceExtent[]> {
      return extentsOf(holes, offset, length).map((x) => ({ offset: x.offset, length: x.length, zero: x.on }));
    },
    async contextExtents(_c: string, offset: number, length: number): Promise<ContextExtent[]> {
      // Answers stop short, like a server's may.
      return extentsOf(dirty ?? [], offset, length).slice(0, 2).map((x) => ({ offset: x.offset, length: x.length, flags: x.on ? 1 : 0 }));
    },
    async flush(): Promise<void> {},
    async close(): Promise<void> {},
  };
  return e as unknown as Endpoint & { reads: number };
}

describe('checkpoint observer', () => {
  const identity: CopyIdentity = {
    source: { name: 'nbd+unix:///?socket=/s', size: 1 << 30 },
    destination: { name: '/tmp/out.img', size: 1 << 30 },
    options: { allocated: false, sparse: 4096 },
  };

  it('saves as ranges complete, resumes from the rest, and removes the file at the end', async () => {
    const file = path.join(dir, 'c.ckpt');
    const dst = memoryEndpoint(Buffer.alloc(1 << 20));
    const first = new CheckpointObserver(file, identity, new DoneRanges(), { saveEvery: 65536, flush: false });
    await first.start({ source: dst, destination: dst, plan: {} as never, size: 1 << 20 });
    expect((await readCheckpoint(file))!.done).toEqual([]);
    first.done(65536, 65536);
    first.done(0, 65536);
    await first.abandon();
    expect((await readCheckpoint(file))!.done).toEqual([[0, 131072]]);
    const second = new CheckpointObserver(file, identity, new DoneRanges((await readCheckpoint(file))!.done), { saveEvery: 1 << 30, flush: false });
    expect(second.remaining().ranges(0, 1 << 20, 0)).toEqual([[131072, 1 << 20]]);
    await second.start({ source: dst, destination: dst, plan: {} as never, size: 1 << 20 });
    second.done(131072, (1 << 20) - 131072);
    await second.end();
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('dirty bitmap ranges', () => {
  it('lists the dirty ranges, asking again when answers stop short', async () => {
    const src = memoryEndpoint(Buffer.alloc(1 << 20), [], [[4096, 8192], [65536, 65536 * 3], [900_000, 1 << 20]]);
    const d = new DirtyBitmapRanges(src, 'qemu:dirty-bitmap:b0');
    expect(await d.ranges(0, 1 << 20, 0)).toEqual([[4096, 8192], [65536, 196608], [900_000, 1 << 20]]);
    expect(await d.ranges(5000, 70000, 0)).toEqual([[5000, 8192], [65536, 75000]]);
  });

  it('is refused with one line when the source has no such context', () => {
    const src = memoryEndpoint(Buffer.alloc(4096));
    expect(() => new DirtyBitmapRanges(src, 'qemu:dirty-bitmap:b0'))
      .toThrow('--dirty-bitmap: memory does not offer the meta context qemu:dirty-bitmap:b0');
  });
});

describe('verification', () => {
  /** Drives the observers like a copy would: ranges in random order, holes as zero ranges. */
  async function verifyCopy(source: Buffer, holes: RangeList, destination: Endpoint, blockSize: number): Promise<void> {
    const hash = new BlockHashObserver({ algorithm: 'sha256', blockSize }, false);
    const verify = new VerifyObserver(hash);
    const start = { source: destination, destination, plan: {} as never, size: source.length };
    hash.start(start);
    verify.start(start);
    const pieces: Array<[number, number]> = [];
    for (let at = 0; at < source.length; at += 40_000) pieces.push([at, Math.min(40_000, source.length - at)]);
    pieces.sort(() => Math.random() - 0.5);
    for (const [o, l] of pieces) {
      // Holes of the source are never read: they come as zero ranges.
      for (const [s, e] of new DoneRanges(holes).missing(o, l)) hash.data(s, Buffer.from(source.subarray(s, e)));
      for (const [s, e] of holes) if (e > o && s < o + l) hash.zero(Math.max(s, o), Math.min(e, o + l) - Math.max(s, o));
    }
    const end = { source: destination, destination, bytes: source.length };
    hash.end(end);
    await verify.end(end);
  }

  it('passes a faithful copy without reading its holes, and names the first differing block', async () => {
    const size = 3 * 1024 * 1024 + 1234;
    const source = crypto.randomBytes(size);
    const holes: RangeList = [[1 << 20, 2 << 20]];
    source.fill(0, 1 << 20, 2 << 20);
    const copy = memoryEndpoint(Buffer.from(source), holes);
    await verifyCopy(source, holes, copy, 65536);
    expect(copy.reads).toBe(size - (1 << 20));

    const bad = Buffer.from(source);
    bad[2_500_000] ^= 1;
    bad[3_000_000] ^= 1;
    await expect(verifyCopy(source, holes, memoryEndpoint(bad, holes), 65536))
      .rejects.toThrow(`verify: destination differs from source at offset ${Math.floor(2_500_000 / 65536) * 65536} (block of 65536 bytes)`);
    const tail = Buffer.from(source);
    tail[size - 1] ^= 1;
    await expect(verifyCopy(source, holes, memoryEndpoint(tail, holes), 1 << 20))
      .rejects.toThrow(`at offset ${3 << 20} (block of 1234 bytes)`);
    // A destination hole where the source had data.
    await expect(verifyCopy(source, holes, memoryEndpoint(Buffer.from(source), [[65536, 131072]]), 65536))
      .rejects.toThrow('at offset 65536 (block of 65536 bytes)');
  });

  it('is refused for a destination that cannot be read back', () => {
    const hash = new BlockHashObserver({ algorithm: 'sha256', blockSize: 65536 });
    const verify = new VerifyObserver(hash);
    const pipe = { ...memoryEndpoint(Buffer.alloc(0)), name: 'stdout', sequential: true } as Endpoint;
    expect(() => verify.start({ source: pipe, destination: pipe, plan: {} as never, size: undefined }))
      .toThrow('verify: stdout cannot be read back (a pipe or stream)');
  });
});

describe('restricting a window to wanted ranges', () => {
  it('marks what lies outside as skip and keeps data and zero apart inside', async () => {
    const { restrictExtents, widenToBlocks } = await import('../src/copy/restrict-extents.js');
    const extents = [
      { offset: 0, length: 100, zero: false },
      { offset: 100, length: 50, zero: true },
      { offset: 150, length: 50, zero: false },
    ];
    expect(restrictExtents(extents, [[20, 120], [160, 170]])).toEqual([
      { offset: 0, length: 20, zero: false, skip: true },
      { offset: 20, length: 80, zero: false },
      { offset: 100, length: 20, zero: true },
      { offset: 120, length: 40, zero: false, skip: true },
      { offset: 160, length: 10, zero: false },
      { offset: 170, length: 30, zero: false, skip: true },
    ]);
    expect(restrictExtents(extents, [])).toEqual([{ offset: 0, length: 200, zero: false, skip: true }]);
    expect(widenToBlocks([[5, 10], [12, 20], [70, 71]], 16, 75)).toEqual([[0, 32], [64, 75]]);
  });
});
