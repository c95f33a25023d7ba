// Work is cut like libnbd's: 128 MiB slices, no request crossing one, so a destination that
// logs what it receives (nbdkit's eval plugin here) sees the same requests from both tools.
// The source has data at 0, 1G-1, 4G-1 and 4G and zeroes between: several GiB of zero runs.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/build.js';
import { requireBinaries } from './helpers/binaries.js';
import { makeTempDir } from './helpers/temp.js';

const OUR_COPY = process.env['NBDCOPY_UNDER_TEST'] ?? join(REPO, 'bin', 'nbdcopy');
const have = requireBinaries('/usr/bin/nbdcopy', 'nbdkit');
const maybe = have ? describe : describe.skip;

const dir = makeTempDir('nbdcopy-slices-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The requests `nbdcopy` sends to a logging destination, one `method count offset` line each, sorted. */
function requestsOf(nbdcopy: string, name: string): string[] {
  const log = join(dir, `${name}.log`);
  const r = spawnSync(nbdcopy, ['-S', '0', '--request-size=32768', '--',
    '[', 'nbdkit', '--exit-with-parent', 'data', '1 @1073741823 1 @4294967295 1 1', ']',
    '[', 'nbdkit', '--exit-with-parent', 'eval', 'get_size=echo 4294967297', 'pread=head -c $3 /dev/zero',
    `pwrite=cat >/dev/null; echo $1 $3 $4 >> ${log}`, `zero=echo $1 $3 $4 >> ${log}`, ']'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').sort();
}

maybe('requests cut at 128 MiB slices', () => {
  it('a data disk with bytes at 0, 1G-1, 4G-1 and 4G: the same requests as libnbd', () => {
    const theirs = requestsOf('/usr/bin/nbdcopy', 'libnbd');
    const ours = requestsOf(OUR_COPY, 'ours');
    expect(ours).toEqual(theirs);
    // What makes it so: zero runs of several GiB arrive as requests of at most one slice.
    const zeroes = ours.filter((l) => l.startsWith('zero ')).map((l) => Number(l.split(' ')[1]));
    expect(zeroes.length).toBeGreaterThan(30);
    expect(Math.max(...zeroes)).toBe(128 * 1024 * 1024);
  }, 240_000);
});
