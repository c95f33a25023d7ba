// Without --flush nbdcopy syncs nothing, as libnbd's does not: in particular not its stdout
// and stderr when they are files (koffi's native library fsyncs both at exit, which after a
// copy into a file made the exit wait for the copy's data to reach the disk). With --flush
// the destination is synced. Seen with strace(1): every fsync-family call and its result.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, LIBNBD_NBDCOPY, OUR_NBDCOPY } from './helpers/build.js';
import { requireBinaries } from './helpers/binaries.js';
import { makeTempDir, removeDir } from './helpers/temp.js';

const have = requireBinaries('strace', LIBNBD_NBDCOPY);
const MiB = 1 << 20;

let dir: string;
let src: string;
beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir('nbdcopy-fsync-');
  src = join(dir, 'src.img');
  fs.writeFileSync(src, crypto.randomBytes(4 * MiB));
});
afterAll(() => removeDir(dir));

/** Runs `argv` under strace with stdout and stderr going to files; returns its successful syncs. */
function syncsOf(name: string, argv: string[]): { status: number | null; syncs: string[]; stdout: string } {
  const log = join(dir, `${name}.strace`);
  const stdout = join(dir, `${name}.stdout`);
  const out = fs.openSync(stdout, 'w');
  const err = fs.openSync(join(dir, `${name}.stderr`), 'w');
  try {
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=fsync,fdatasync,syncfs,sync', '-o', log, ...argv], {
      stdio: ['ignore', out, err],
      timeout: 60_000,
    });
    const syncs = fs.readFileSync(log, 'utf8').split('\n').filter((l) => /\b(fsync|fdatasync|syncfs|sync)\(.*\)\s*= 0/.test(l));
    return { status: r.status, syncs, stdout };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
  }
}

describe.skipIf(!have)('nbdcopy and fsync', () => {
  it('file to file without --flush: no sync at all, stdout and stderr files included (as libnbd)', () => {
    for (const [name, tool] of [['ours', OUR_NBDCOPY], ['libnbd', LIBNBD_NBDCOPY]] as const) {
      const dst = join(dir, `${name}.img`);
      const r = syncsOf(name, [tool, src, dst]);
      expect(r.status, name).toBe(0);
      expect(fs.readFileSync(dst).equals(fs.readFileSync(src)), name).toBe(true);
      expect(r.syncs, name).toEqual([]);
    }
  });

  it('to stdout redirected to a file: no sync without --flush, the destination synced with it', () => {
    const plain = syncsOf('stdout-plain', [OUR_NBDCOPY, src, '-']);
    expect(plain.status).toBe(0);
    expect(fs.readFileSync(plain.stdout).equals(fs.readFileSync(src))).toBe(true);
    expect(plain.syncs).toEqual([]);
    const flushed = syncsOf('stdout-flush', [OUR_NBDCOPY, '--flush', src, '-']);
    expect(flushed.status).toBe(0);
    expect(fs.readFileSync(flushed.stdout).equals(fs.readFileSync(src))).toBe(true);
    expect(flushed.syncs.length).toBeGreaterThan(0);
  });
});

describe('the exit guard in a worker thread', () => {
  it('a worker that loads libc and calls process.exit leaves the process its stdout', async () => {
    const { Worker } = await import('node:worker_threads');
    const before = fs.readlinkSync('/proc/self/fd/1');
    const libc = new URL('../dist/sys/libc.js', import.meta.url).href;
    const worker = new Worker(`import(${JSON.stringify(libc)}).then((m) => { m.loadLibc(); process.exit(0); });`, { eval: true });
    await new Promise((resolve) => worker.once('exit', resolve));
    // Descriptor 1 still leads where it did, not to /dev/null.
    expect(fs.readlinkSync('/proc/self/fd/1')).toBe(before);
  });
});
