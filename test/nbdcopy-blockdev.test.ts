// Block devices, through a loop device over a temp file: size by BLKGETSIZE64, holes of the
// source zeroed on the device (its old contents must not show through), too-small device.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { makeSparseFile, noise, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
const have = requireBinaries('losetup', 'nbdkit');
let dir: string;
let backing: string;
let device: string | undefined;

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  backing = path.join(dir, 'backing.img');
  fs.writeFileSync(backing, noise(16 * MiB, 9));
  const r = spawnSync('losetup', ['-f', '--show', backing]);
  if (r.status === 0) device = r.stdout.toString().trim();
  else console.warn(`\n*** SKIPPING block device tests: losetup failed (${r.stderr.toString().trim()}) ***\n`);
});
afterAll(() => {
  if (device !== undefined) spawnSync('losetup', ['-d', device]);
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy with a block device', () => {
  it('copies a sparse file onto the device: data written, holes zeroed, size from the device', (ctx) => {
    if (device === undefined) return ctx.skip();
    const src = path.join(dir, 'src.img');
    makeSparseFile(src, 16 * MiB, [[MiB, noise(MiB, 1)], [10 * MiB + 512, noise(4096, 2)]]);
    const r = run(OUR_NBDCOPY, [src, device]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const back = path.join(dir, 'back.img');
    expect(run(OUR_NBDCOPY, [device, back]).status).toBe(0);
    expect(fs.statSync(back).size).toBe(16 * MiB);
    expect(sha256File(back)).toBe(sha256File(src));
  });

  it('refuses a source bigger than the device before writing', (ctx) => {
    if (device === undefined) return ctx.skip();
    const r = run(OUR_NBDCOPY, ['--', '[', 'nbdkit', 'pattern', '17M', ']', device]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/destination size \(16777216\) is smaller than source size \(17825792\)/);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
  });
});
