// The write path of local file destinations: writes made on the event loop, merged dirty
// ranges (writeback kicks and wait-and-drop per chunk, not per request), checked on bytes.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirtyRanges } from '../src/copy/endpoints/dirty-ranges.js';
import { openLocalDestination, openLocalSource } from '../src/copy/endpoints/open-local.js';
import { noise, sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const KiB = 1024;
const MiB = 1024 * KiB;

function takeAll(d: DirtyRanges): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  while (d.pending) {
    d.takeOldest();
    out.push([d.takenOffset, d.takenLength]);
  }
  return out;
}

describe('DirtyRanges', () => {
  it('merges writes that extend a recent range at either end, in order of first write', () => {
    const d = new DirtyRanges(MiB, 10 * MiB);
    d.add(0, 100);
    d.add(1000, 100);
    d.add(100, 100); // extends the first range
    d.add(900, 100); // prepends to the second
    d.add(5000, 10);
    expect(d.bytes).toBe(410);
    expect(takeAll(d)).toEqual([[0, 200], [900, 200], [5000, 10]]);
    expect(d.bytes).toBe(0);
    expect(d.pending).toBe(false);
  });

  it('a late write that fills the gap between two ranges joins them into the older one', () => {
    const d = new DirtyRanges(MiB, 10 * MiB);
    d.add(0, 100);
    d.add(200, 100); // arrived before [100, 200)
    d.add(5000, 10);
    d.add(100, 100); // bridges [0, 100) and [200, 300)
    d.add(300, 100);
    d.add(4990, 10); // prepends to [5000, 5010)
    expect(d.bytes).toBe(420);
    expect(takeAll(d)).toEqual([[0, 400], [4990, 20]]);
    expect(d.pending).toBe(false);
  });

  it('stops growing a range at the chunk size', () => {
    const d = new DirtyRanges(256, 10 * MiB);
    for (let o = 0; o < 1024; o += 128) d.add(o, 128);
    expect(takeAll(d)).toEqual([[0, 256], [256, 256], [512, 256], [768, 256]]);
  });

  it('asks for writeback of the whole range each time it gains kickSize new bytes', () => {
    const d = new DirtyRanges(MiB, 300);
    expect(d.add(0, 100)).toBe(false);
    expect(d.add(100, 100)).toBe(false);
    expect(d.add(200, 100)).toBe(true);
    expect([d.kickOffset, d.kickLength]).toEqual([0, 300]);
    expect(d.add(300, 100)).toBe(false);
    expect(d.add(5000, 400)).toBe(true);
    expect([d.kickOffset, d.kickLength]).toEqual([5000, 400]);
  });

  it('keeps exact byte counts over many ranges (the array is compacted as it is consumed)', () => {
    const d = new DirtyRanges(4 * KiB, MiB);
    let total = 0;
    let taken = 0;
    for (let i = 0; i < 5000; i++) {
      // Every other block: nothing merges.
      d.add(i * 8 * KiB, 4 * KiB);
      total += 4 * KiB;
      if (i % 3 === 0) {
        d.takeOldest();
        taken += d.takenLength;
        expect(d.takenOffset % (8 * KiB)).toBe(0);
      }
    }
    for (const [, l] of takeAll(d)) taken += l;
    expect(taken).toBe(total);
    expect(d.bytes).toBe(0);
  });
});

describe('FileEndpoint writes', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir();
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('writes beyond the 64 MiB dirty window, out of order and concurrently, land exactly', async () => {
    const size = 96 * MiB;
    const request = 256 * KiB;
    const data = noise(size, 7);
    const file = path.join(dir, 'out.img');
    const dest = openLocalDestination(file, { sourceSize: size });
    try {
      // Two "connections" each write their half as lanes of 4, completing in shuffled order
      // inside each group, with a hole left in the middle of each half and filled last.
      const order: number[] = [];
      const half = size / 2;
      for (let o = 0; o < half; o += request) order.push(o, half + o);
      const late = order.splice(40, 8);
      order.push(...late);
      for (let i = 0; i < order.length; i += 4) {
        const group = order.slice(i, i + 4).reverse();
        await Promise.all(group.map((o) => dest.write(data.subarray(o, o + request), o, 0)));
      }
      await dest.flush();
    } finally {
      await dest.close();
    }
    expect(fs.statSync(file).size).toBe(size);
    expect(sha256File(file)).toBe(sha256(data));
  });

  it('reports a failed write as one error naming the file and offset', async () => {
    const file = path.join(dir, 'ro.img');
    fs.writeFileSync(file, Buffer.alloc(MiB));
    const dest = openLocalDestination(file, { sourceSize: MiB });
    // Close the fd behind the endpoint's back: the next write fails with EBADF.
    fs.closeSync((dest as unknown as { fd: number }).fd);
    await expect(dest.write(Buffer.alloc(4096, 1), 8192, 0)).rejects.toThrow(/ro\.img: write at 8192/);
  });
});

describe('FileEndpoint as a source that shrinks', () => {
  it('extents past the new end are an error, not zeroes; mapped bytes are refused', async () => {
    const dir = makeTempDir();
    try {
      const file = path.join(dir, 'src.img');
      fs.writeFileSync(file, noise(4 * MiB, 3));
      const src = openLocalSource(file);
      try {
        expect(await src.extents(0, 4 * MiB, 0)).toEqual([{ offset: 0, length: 4 * MiB, zero: false }]);
        expect(src.fileSource?.mappedBytes(MiB, MiB)?.length).toBe(MiB);
        fs.truncateSync(file, MiB);
        await expect(src.extents(2 * MiB, 2 * MiB, 0)).rejects.toThrow(/src\.img: the file shrank to 1048576 bytes during the copy/);
        expect(src.fileSource?.mappedBytes(2 * MiB, MiB)).toBeUndefined();
      } finally {
        await src.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
