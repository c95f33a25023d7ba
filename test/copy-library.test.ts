// copy(): nbdcopy as a library call, including a `[ CMD ]` server and cleanup on error.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copy } from '../src/copy/index.js';
import { requireBinaries } from './helpers/binaries.js';
import { LIBNBD_NBDCOPY } from './helpers/build.js';
import { makeSparseFile, noise, sha256File } from './helpers/files.js';
import { run } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit', LIBNBD_NBDCOPY);
let dir: string;

beforeAll(() => {
  dir = makeTempDir();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!have)('copy', () => {
  it('copies a [ nbdkit ] source to a file like libnbd does', async () => {
    const out = path.join(dir, 'lib.img');
    const progress: number[] = [];
    const r = await copy(['nbdkit', 'pattern', String(5 * MiB + 3)], out, { onProgress: (d) => progress.push(d) });
    expect(r.bytes).toBe(5 * MiB + 3);
    expect(progress[progress.length - 1]).toBe(5 * MiB + 3);
    expect(run(LIBNBD_NBDCOPY, ['--', '[', 'nbdkit', 'pattern', String(5 * MiB + 3), ']', path.join(dir, 'ref.img')]).status).toBe(0);
    expect(sha256File(out)).toBe(sha256File(path.join(dir, 'ref.img')));
  });

  it('copies file to file and rejects with NbdError on failure', async () => {
    const src = path.join(dir, 'src.img');
    makeSparseFile(src, 3 * MiB, [[MiB, noise(1000, 1)]]);
    await copy(src, path.join(dir, 'copy.img'));
    expect(sha256File(path.join(dir, 'copy.img'))).toBe(sha256File(src));
    await expect(copy(path.join(dir, 'missing.img'), 'null:')).rejects.toMatchObject({ name: 'NbdError', code: 'ENOENT' });
    await expect(copy(['nbdkit', '--filter=error', 'pattern', '1M', 'error-pread-rate=1'], 'null:'))
      .rejects.toMatchObject({ name: 'NbdError' });
  });
});
