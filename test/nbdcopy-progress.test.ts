// nbdcopy --progress=FD: the descriptor must be one the caller opened. A closed one is refused
// with one line and exit status 1 before anything is connected, started or written, including
// the descriptors Node opens for itself (3 to about 17), which only bin/nbdcopy's shell part
// can tell apart from the caller's.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { noise, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

let dir: string;
let src: string;
const out = (name: string) => path.join(dir, name);

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  src = out('src.img');
  fs.writeFileSync(src, noise(3 * (1 << 20) + 17, 5));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function expectRefused(r: ReturnType<typeof run>, fd: number): void {
  expect(r.status).toBe(1);
  expect(r.stdout.length).toBe(0);
  expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
  expect(r.stderr).toBe(`nbdcopy: --progress=${fd}: file descriptor ${fd} is not open\n`);
}

describe('nbdcopy --progress=FD', () => {
  it('a descriptor that is not open: one line, exit 1, no destination written', () => {
    const r = run(OUR_NBDCOPY, ['--progress=99', src, out('a.img')]);
    expectRefused(r, 99);
    expect(fs.existsSync(out('a.img'))).toBe(false);
  });

  it('also when the descriptor is one Node opens for itself (5), and with an abbreviated option', () => {
    expectRefused(run(OUR_NBDCOPY, ['--progress=5', src, out('b.img')]), 5);
    expectRefused(run(OUR_NBDCOPY, ['--prog=12', src, out('b.img')]), 12);
    expect(fs.existsSync(out('b.img'))).toBe(false);
  });

  it('no [ CMD ] server is started', () => {
    const marker = out('started');
    const r = run(OUR_NBDCOPY, ['--progress=98', '--', '[', 'sh', '-c', `touch "${marker}"; exec nbdkit -s memory 1M`, ']', 'null:']);
    expectRefused(r, 98);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it('without the shell launcher (node bin/nbdcopy), a closed descriptor is still refused', () => {
    expectRefused(run(process.execPath, [OUR_NBDCOPY, '--progress=97', src, out('c.img')]), 97);
    expect(fs.existsSync(out('c.img'))).toBe(false);
  });

  it('an open descriptor above Node\'s own (here 20) gets the lines, and the copy is exact', () => {
    const pfile = out('progress.txt');
    // dash redirects descriptors 0 to 9 only.
    const r = run('bash', ['-c', `exec 20>"${pfile}"; exec "${OUR_NBDCOPY}" --progress=20 "${src}" "${out('d.img')}"`]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(sha256File(out('d.img'))).toBe(sha256File(src));
    const lines = fs.readFileSync(pfile, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('0/100');
    expect(lines[lines.length - 1]).toBe('100/100');
  });

  it('an open low descriptor (3) gets the lines, not Node\'s internals', () => {
    const pfile = out('progress3.txt');
    const r = run('sh', ['-c', `exec 3>"${pfile}"; exec "${OUR_NBDCOPY}" --progress=3 "${src}" "${out('e.img')}"`]);
    expect(r.status).toBe(0);
    expect(sha256File(out('e.img'))).toBe(sha256File(src));
    expect(fs.readFileSync(pfile, 'utf8').trim().split('\n').at(-1)).toBe('100/100');
  });
});

describe('nbdcopy -p with a [ CMD ] server writing to stderr (not a terminal)', () => {
  it.skipIf(!requireBinaries('nbdkit'))('the server\'s last lines, written as it shuts down, come out whole before the final progress line', () => {
    const r = run(OUR_NBDCOPY, ['-p', '--', '[', 'nbdkit', '-v', '-r', 'file', src, ']', 'null:']);
    expect(r.status).toBe(0);
    const lines = r.stderr.split('\n');
    expect(lines.pop()).toBe('');
    // nbdkit -v says this last, after it got SIGTERM: nothing it wrote is lost or cut.
    const unload = lines.findIndex((l) => /^nbdkit: debug: file: unload plugin$/.test(l));
    expect(unload).toBeGreaterThan(0);
    expect(lines.slice(unload + 1).every((l) => /^nbdcopy: 100% /.test(l))).toBe(true);
    expect(lines.every((l) => l.startsWith('nbdkit: ') || l.startsWith('nbdcopy: '))).toBe(true);
  });
});
