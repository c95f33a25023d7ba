// Our bin/nbdcopy on local endpoints: files, stdin/stdout, null:, sparse output, --allocated,
// odd and zero sizes, data beyond 4 GiB, and the error paths (one line, exit 1, no stack).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { allocatedBytes, makeSparseFile, noise, sha256, sha256File } from './helpers/files.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
let dir: string;
let src: string;
const SIZE = 40 * MiB + 333; // not a multiple of 512 nor of the request size

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  src = path.join(dir, 'src.img');
  makeSparseFile(src, SIZE, [[0, noise(100_000, 1)], [10 * MiB, noise(3 * MiB, 2)], [SIZE - 1000, noise(1000, 3)]]);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const out = (name: string) => path.join(dir, name);

describe('nbdcopy on local files and pipes', () => {
  it('file -> new file: same bytes, stays sparse', () => {
    const r = run(OUR_NBDCOPY, [src, out('a.img')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(sha256File(out('a.img'))).toBe(sha256File(src));
    expect(fs.statSync(out('a.img')).size).toBe(SIZE);
    expect(allocatedBytes(out('a.img'))).toBeLessThan(5 * MiB);
  });

  it('file -> existing bigger file: truncated to the source size', () => {
    fs.writeFileSync(out('b.img'), noise(SIZE + 5 * MiB, 9));
    expect(run(OUR_NBDCOPY, [src, out('b.img')]).status).toBe(0);
    expect(sha256File(out('b.img'))).toBe(sha256File(src));
    expect(allocatedBytes(out('b.img'))).toBeLessThan(5 * MiB);
  });

  it('--allocated makes a fully allocated copy', () => {
    expect(run(OUR_NBDCOPY, ['--allocated', src, out('c.img')]).status).toBe(0);
    expect(sha256File(out('c.img'))).toBe(sha256File(src));
    expect(allocatedBytes(out('c.img'))).toBeGreaterThanOrEqual(SIZE - 4096);
  });

  it('zero blocks inside data become holes (-S), and -S 0 keeps them', () => {
    const z = out('zeroes-in-data.img');
    fs.writeFileSync(z, Buffer.concat([noise(MiB, 4), Buffer.alloc(4 * MiB), noise(MiB, 5)]));
    expect(allocatedBytes(z)).toBeGreaterThanOrEqual(6 * MiB);
    expect(run(OUR_NBDCOPY, [z, out('d.img')]).status).toBe(0);
    expect(sha256File(out('d.img'))).toBe(sha256File(z));
    expect(allocatedBytes(out('d.img'))).toBeLessThan(3 * MiB);
    expect(run(OUR_NBDCOPY, ['-S', '0', z, out('e.img')]).status).toBe(0);
    expect(allocatedBytes(out('e.img'))).toBeGreaterThanOrEqual(6 * MiB);
  });

  it('stdin -> file, file -> stdout, stdin -> stdout', () => {
    const input = fs.readFileSync(src);
    const r1 = run(OUR_NBDCOPY, ['-', out('f.img')], { input });
    expect(r1.status).toBe(0);
    expect(sha256File(out('f.img'))).toBe(sha256(input));
    expect(allocatedBytes(out('f.img'))).toBeLessThan(6 * MiB);
    const r2 = run(OUR_NBDCOPY, [src, '-']);
    expect(r2.status).toBe(0);
    expect(sha256(r2.stdout)).toBe(sha256(input));
    const r3 = run(OUR_NBDCOPY, ['-', '-'], { input });
    expect(r3.status).toBe(0);
    expect(sha256(r3.stdout)).toBe(sha256(input));
  });

  it('stdin ending in zeroes still gives a file of the right size', () => {
    const input = Buffer.concat([noise(5000, 6), Buffer.alloc(MiB + 17)]);
    expect(run(OUR_NBDCOPY, ['-', out('g.img')], { input }).status).toBe(0);
    expect(fs.statSync(out('g.img')).size).toBe(input.length);
    expect(sha256File(out('g.img'))).toBe(sha256(input));
  });

  it('null: destination and zero-size files', () => {
    expect(run(OUR_NBDCOPY, [src, 'null:']).status).toBe(0);
    fs.writeFileSync(out('empty'), '');
    const r = run(OUR_NBDCOPY, [out('empty'), out('h.img')]);
    expect(r.status).toBe(0);
    expect(fs.statSync(out('h.img')).size).toBe(0);
    const r2 = run(OUR_NBDCOPY, ['-', out('i.img')], { input: '' });
    expect(r2.status).toBe(0);
    expect(fs.statSync(out('i.img')).size).toBe(0);
  });

  it('copies data beyond the 4 GiB mark of a sparse 5 GiB file', () => {
    const big = out('big.img');
    const pieces: Array<[number, Buffer]> = [[4 * 1024 * MiB + 12345, noise(70_000, 8)], [5 * 1024 * MiB - 10, noise(10, 9)]];
    makeSparseFile(big, 5 * 1024 * MiB, pieces);
    const r = run(OUR_NBDCOPY, [big, out('big-copy.img')]);
    expect(r.status).toBe(0);
    const fd = fs.openSync(out('big-copy.img'), 'r');
    for (const [offset, data] of pieces) {
      const b = Buffer.alloc(data.length);
      fs.readSync(fd, b, 0, b.length, offset);
      expect(b.equals(data)).toBe(true);
    }
    fs.closeSync(fd);
    expect(fs.statSync(out('big-copy.img')).size).toBe(5 * 1024 * MiB);
    expect(allocatedBytes(out('big-copy.img'))).toBeLessThan(MiB);
    fs.rmSync(big);
    fs.rmSync(out('big-copy.img'));
  });

  it('--progress=FD writes N/100 lines ending in 100/100', () => {
    const pfile = out('progress.txt');
    const r = run('sh', ['-c', `exec 3>"${pfile}"; "${OUR_NBDCOPY}" --progress=3 "${src}" null:`]);
    expect(r.status).toBe(0);
    const lines = fs.readFileSync(pfile, 'utf8').trim().split('\n');
    expect(lines.every((l) => /^\d{1,3}\/100$/.test(l))).toBe(true);
    expect(lines[0]).toBe('0/100');
    expect(lines[lines.length - 1]).toBe('100/100');
    const pct = lines.map((l) => Number(l.split('/')[0]));
    expect(pct).toEqual([...pct].sort((a, b) => a - b));
  });

  it('-p draws a bar on stderr and still copies', () => {
    const r = run(OUR_NBDCOPY, ['-p', src, out('j.img')]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/100%/);
    expect(sha256File(out('j.img'))).toBe(sha256File(src));
  });

  it('--help, --version', () => {
    const h = run(OUR_NBDCOPY, ['--help']);
    expect(h.status).toBe(0);
    expect(h.stdout.toString()).toMatch(/^Usage: nbdcopy/);
    const v = run(OUR_NBDCOPY, ['-V']);
    expect(v.status).toBe(0);
    expect(v.stdout.toString()).toMatch(/^nbdcopy \d/);
  });

  it.each([
    [['no-such-file', 'x.img'], /^nbdcopy: no-such-file: No such file or directory$/m],
    [['.', 'x.img'], /Is a directory/],
    [['--bogus', 'a', 'b'], /unrecognized option/],
    [['--request-size=3M', 'a', 'b'], /--request-size/],
    [['onlyone'], /expected SOURCE and DESTINATION/],
    [['SRC', '/proc/version'], /.+/],
    [['SRC', '/nonexistent-dir/x.img'], /No such file or directory/],
  ])('error %j: exit 1 and one line', (argv, message) => {
    const args = argv.map((a) => (a === 'SRC' ? src : a));
    const r = run(OUR_NBDCOPY, args, { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
  });

  it('-v adds debug lines and a stack on error', () => {
    const r = run(OUR_NBDCOPY, ['-v', 'no-such-file', 'x.img'], { cwd: dir });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\n\s+at /);
  });
});
