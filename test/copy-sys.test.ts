// The syscall wrappers behind local files: SEEK_DATA/SEEK_HOLE, fallocate modes, device size.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seekData, seekHole, seekEnd } from '../src/sys/seek.js';
import { allocateRange, punchHole, zeroRange, FallocateError } from '../src/sys/fallocate.js';
import { blockDeviceSize } from '../src/sys/blockdev.js';
import { allocatedBytes, makeSparseFile, noise } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
let dir: string;
let file: string;
let fd: number;

beforeAll(() => {
  dir = makeTempDir();
  file = path.join(dir, 'sparse.img');
  makeSparseFile(file, 8 * MiB, [[2 * MiB, noise(MiB, 1)], [6 * MiB, noise(MiB, 2)]]);
  fd = fs.openSync(file, 'r+');
});
afterAll(() => {
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('sys wrappers', () => {
  it('SEEK_DATA / SEEK_HOLE walk the data regions; ENXIO past the last data is undefined', () => {
    expect(seekData(fd, 0)).toBe(2 * MiB);
    expect(seekHole(fd, 2 * MiB)).toBe(3 * MiB);
    expect(seekData(fd, 3 * MiB)).toBe(6 * MiB);
    expect(seekHole(fd, 6 * MiB)).toBe(7 * MiB);
    expect(seekData(fd, 7 * MiB)).toBeUndefined();
    expect(seekHole(fd, 7 * MiB)).toBe(7 * MiB);
    expect(seekData(fd, 8 * MiB)).toBeUndefined();
    expect(seekEnd(fd)).toBe(8 * MiB);
  });

  it('punch hole frees blocks and reads back zeroes; allocate and zero range keep them allocated', () => {
    const before = allocatedBytes(file);
    punchHole(fd, 2 * MiB, MiB);
    expect(allocatedBytes(file)).toBeLessThanOrEqual(before - MiB);
    const b = Buffer.alloc(MiB);
    fs.readSync(fd, b, 0, MiB, 2 * MiB);
    expect(b.equals(Buffer.alloc(MiB))).toBe(true);
    allocateRange(fd, 0, MiB);
    expect(allocatedBytes(file)).toBeGreaterThanOrEqual(2 * MiB);
    try {
      zeroRange(fd, 6 * MiB, MiB);
      fs.readSync(fd, b, 0, MiB, 6 * MiB);
      expect(b.equals(Buffer.alloc(MiB))).toBe(true);
    } catch (err) {
      // tmpfs and some filesystems have no ZERO_RANGE: the wrapper says so, the endpoint falls back.
      expect(err).toBeInstanceOf(FallocateError);
      expect((err as FallocateError).unsupported).toBe(true);
    }
    expect(fs.statSync(file).size).toBe(8 * MiB);
  });

  it('device size falls back to lseek(SEEK_END) on a regular file', () => {
    expect(blockDeviceSize(fd)).toBe(8 * MiB);
  });
});
