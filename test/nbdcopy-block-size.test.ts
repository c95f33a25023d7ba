// nbdcopy into destinations with a large minimum block size (qemu-nbd on qcow2 advertises
// 64 KiB), fed by a source whose extents are finer (sparse-random: 4 KiB runs). A compressed
// qcow2 cluster can be written once only: a block that got a zero request and then a write,
// or a read-modify-write, fails with EIO there. qemu-img compare checks the result against
// the same source written to a raw file by libnbd's nbdcopy.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/build.js';
import { requireBinaries } from './helpers/binaries.js';
import { makeTempDir } from './helpers/temp.js';

const OUR_COPY = join(REPO, 'bin', 'nbdcopy');
const have = requireBinaries('/usr/bin/nbdcopy', 'nbdkit', 'qemu-nbd', 'qemu-img');
const maybe = have ? describe : describe.skip;
const SOURCE = ['nbdkit', '--exit-with-parent', 'sparse-random', '1G', 'seed=1'];

const dir = makeTempDir('nbdcopy-block-size-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(bin: string, args: string[]): { stderr: string; status: number | null } {
  const r = spawnSync(bin, args, { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { stderr: r.stderr, status: r.status };
}

function newQcow2(name: string): string {
  const file = join(dir, name);
  expect(run('qemu-img', ['create', '-q', '-f', 'qcow2', file, '1G']).status).toBe(0);
  return file;
}

maybe('a qcow2 destination behind qemu-nbd (64 KiB minimum block size)', () => {
  const raw = join(dir, 'source.raw');
  beforeAll(() => {
    const r = run('/usr/bin/nbdcopy', ['--', '[', ...SOURCE, ']', raw]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  }, 120_000);

  it('the compress driver (each cluster written once): copies, and qemu-img compare finds it equal', () => {
    const out = newQcow2('compressed.qcow2');
    const r = run(nbdcopyUnderTest(), ['--', '[', ...SOURCE, ']',
      '[', 'qemu-nbd', '--image-opts', `driver=compress,file.driver=qcow2,file.file.driver=file,file.file.filename=${out}`, ']']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, out]);
    expect(cmp.stderr).toBe('');
    expect(cmp.status).toBe(0);
  }, 120_000);

  it('a plain qcow2: copies, and qemu-img compare finds it equal', () => {
    const out = newQcow2('plain.qcow2');
    const r = run(nbdcopyUnderTest(), ['--', '[', ...SOURCE, ']', '[', 'qemu-nbd', '-f', 'qcow2', out, ']']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, out]);
    expect(cmp.stderr).toBe('');
    expect(cmp.status).toBe(0);
  }, 120_000);
});

/** Ours, or another build's for checking that this test fails without the fix. */
function nbdcopyUnderTest(): string {
  return process.env['NBDCOPY_UNDER_TEST'] ?? OUR_COPY;
}
