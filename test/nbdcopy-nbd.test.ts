// Our bin/nbdcopy against real NBD servers (nbdkit, qemu-nbd): byte-exact copies for every
// pair of endpoint kinds, odd and zero sizes, data beyond 4 GiB, sparseness, what the
// destination server sees (nbdkit log filter), block size limits, and libnbd's output bytes.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { LIBNBD_NBDCOPY, OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { allocatedBytes, makeSparseFile, noise, sha256, sha256File } from './helpers/files.js';
import { run } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { onlineCpus } from '../src/sys/cpus.js';

const MiB = 1 << 20;
/** libnbd's default: up to 4, no more than the online CPUs (its default --threads). */
const DEFAULT_CONNECTIONS = Math.min(4, onlineCpus());
const have = requireBinaries('nbdkit', 'qemu-nbd', LIBNBD_NBDCOPY);
const { servers } = teardownAfterEach<RunningServer>();
let dir: string;
let src: string;
const SIZE = 12 * MiB + 4097; // odd: not a multiple of 512 nor of 256K

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

/** Reads a whole export back with libnbd's nbdcopy (the reference reader). */
function readBack(uri: string, name: string): string {
  const file = path.join(dir, name);
  const r = run(LIBNBD_NBDCOPY, [uri, file]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return file;
}

function ours(args: string[], input?: Buffer) {
  const r = run(OUR_NBDCOPY, args, { input, cwd: dir });
  if (r.status !== 0) console.error(r.stderr);
  return r;
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  src = path.join(dir, 'src.img');
  makeSparseFile(src, SIZE, [[0, noise(70_000, 1)], [5 * MiB + 512, noise(MiB, 2)], [SIZE - 777, noise(777, 3)]]);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy with NBD endpoints', () => {
  it('file -> NBD URI -> file, and NBD -> NBD', async () => {
    const a = await nbdkit('memory', String(SIZE));
    const b = await nbdkit('memory', String(SIZE));
    expect(ours([src, a.uri]).status).toBe(0);
    expect(sha256File(readBack(a.uri, 'a.img'))).toBe(sha256File(src));
    expect(ours([a.uri, b.uri]).status).toBe(0);
    expect(sha256File(readBack(b.uri, 'b.img'))).toBe(sha256File(src));
    expect(ours([b.uri, 'c.img']).status).toBe(0);
    expect(sha256File(path.join(dir, 'c.img'))).toBe(sha256File(src));
    expect(allocatedBytes(path.join(dir, 'c.img'))).toBeLessThan(3 * MiB);
  });

  it('stdin -> NBD and NBD -> stdout', async () => {
    const a = await nbdkit('memory', String(SIZE));
    const input = fs.readFileSync(src);
    expect(ours(['-', a.uri], input).status).toBe(0);
    expect(sha256File(readBack(a.uri, 'd.img'))).toBe(sha256(input));
    const r = ours([a.uri, '-']);
    expect(r.status).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(input));
  });

  it('[ nbdkit ] subprocess as source and destination, -, null:', () => {
    const pattern = ['--', '[', 'nbdkit', 'pattern', String(SIZE), ']'];
    expect(ours([...pattern, 'p.img']).status).toBe(0);
    expect(run(LIBNBD_NBDCOPY, [...pattern, 'p-ref.img'], { cwd: dir }).status).toBe(0);
    expect(sha256File(path.join(dir, 'p.img'))).toBe(sha256File(path.join(dir, 'p-ref.img')));
    const r = ours([...pattern, '-']);
    expect(r.status).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256File(path.join(dir, 'p-ref.img')));
    expect(ours([...pattern, 'null:']).status).toBe(0);
    // Writing into a subprocess destination, read back through a file-backed nbdkit.
    fs.writeFileSync(path.join(dir, 'sub-dst.img'), Buffer.alloc(0));
    fs.truncateSync(path.join(dir, 'sub-dst.img'), SIZE);
    expect(ours(['--', src, '[', 'nbdkit', 'file', path.join(dir, 'sub-dst.img'), ']']).status).toBe(0);
    expect(sha256File(path.join(dir, 'sub-dst.img'))).toBe(sha256File(src));
  });

  it('[ qemu-nbd ] subprocess and a qemu-nbd URI, both directions', async () => {
    // qemu-nbd rounds the export up to 512 bytes: compare with what libnbd gets from it.
    const qsrc = ['--', '[', 'qemu-nbd', '-r', '-f', 'raw', src, ']'];
    expect(ours([...qsrc, 'q.img']).status).toBe(0);
    expect(run(LIBNBD_NBDCOPY, [...qsrc, 'q-ref.img'], { cwd: dir }).status).toBe(0);
    expect(sha256File(path.join(dir, 'q.img'))).toBe(sha256File(path.join(dir, 'q-ref.img')));
    const dst = path.join(dir, 'qdst.raw');
    makeSparseFile(dst, SIZE, [[0, noise(SIZE, 5)]]);
    expect(ours(['--', src, '[', 'qemu-nbd', '-f', 'raw', dst, ']']).status).toBe(0);
    expect(sha256File(dst)).toBe(sha256File(src));
    const q = await startQemuNbd(['-f', 'raw', '-r', src]);
    servers.push(q);
    expect(ours([q.uri, 'q2.img']).status).toBe(0);
    expect(sha256File(path.join(dir, 'q2.img'))).toBe(sha256File(path.join(dir, 'q-ref.img')));
  });

  it('zero-size export and odd sizes match libnbd byte for byte', async () => {
    const z = await nbdkit('memory', '0');
    expect(ours([z.uri, 'zero.img']).status).toBe(0);
    expect(fs.statSync(path.join(dir, 'zero.img')).size).toBe(0);
    for (const size of ['1', '511', '1000003']) {
      const argv = ['--', '[', 'nbdkit', 'pattern', size, ']'];
      expect(ours([...argv, `odd-${size}.img`]).status).toBe(0);
      expect(run(LIBNBD_NBDCOPY, [...argv, `odd-ref-${size}.img`], { cwd: dir }).status).toBe(0);
      expect(fs.statSync(path.join(dir, `odd-${size}.img`)).size).toBe(Number(size));
      expect(sha256File(path.join(dir, `odd-${size}.img`))).toBe(sha256File(path.join(dir, `odd-ref-${size}.img`)));
    }
  });

  it('copies data beyond 4 GiB of a sparse 5 GiB export, output stays sparse', () => {
    const data = '@4294971000 1 2 3 4 5 255 @5368709000 9 8 7';
    expect(ours(['--', '[', 'nbdkit', 'data', `data=${data}`, 'size=5G', ']', 'big.img']).status).toBe(0);
    const big = path.join(dir, 'big.img');
    expect(fs.statSync(big).size).toBe(5 * 1024 * MiB);
    const fd = fs.openSync(big, 'r');
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 4294971000);
    expect([...b]).toEqual([1, 2, 3, 4, 5, 255, 0, 0]);
    fs.readSync(fd, b, 0, 3, 5368709000);
    expect([...b.subarray(0, 3)]).toEqual([9, 8, 7]);
    fs.closeSync(fd);
    expect(allocatedBytes(big)).toBeLessThan(MiB);
    fs.rmSync(big);
  });

  it('sparse-random stays sparse; --allocated does not', () => {
    const argv = ['--', '[', 'nbdkit', 'sparse-random', '256M', 'seed=7', ']'];
    expect(ours([...argv, 's.img']).status).toBe(0);
    expect(run(LIBNBD_NBDCOPY, [...argv, 's-ref.img'], { cwd: dir }).status).toBe(0);
    const s = path.join(dir, 's.img');
    expect(sha256File(s)).toBe(sha256File(path.join(dir, 's-ref.img')));
    expect(allocatedBytes(s)).toBeLessThan(64 * MiB);
    expect(ours(['--allocated', ...argv, 'sa.img']).status).toBe(0);
    expect(sha256File(path.join(dir, 'sa.img'))).toBe(sha256File(s));
    expect(allocatedBytes(path.join(dir, 'sa.img'))).toBeGreaterThanOrEqual(256 * MiB);
    for (const f of ['s.img', 's-ref.img', 'sa.img']) fs.rmSync(path.join(dir, f));
  });

  it('the destination sees zero requests for holes and writes no larger than --request-size', async () => {
    const log = path.join(dir, 'requests.log');
    const d = await nbdkit('--filter=log', 'memory', String(SIZE), `logfile=${log}`);
    expect(ours(['--request-size=64K', src, d.uri]).status).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    const reqs = lines.map((l) => /\b(Write|Zero|Trim) id=\d+ offset=0x([0-9a-f]+) count=0x([0-9a-f]+)/.exec(l))
      .filter((m) => m !== null)
      .map((m) => ({ op: m![1], offset: parseInt(m![2]!, 16), count: parseInt(m![3]!, 16) }));
    const writes = reqs.filter((r) => r.op === 'Write');
    const zeroes = reqs.filter((r) => r.op === 'Zero');
    expect(writes.every((w) => w.count <= 64 * 1024)).toBe(true);
    expect(writes.reduce((a, w) => a + w.count, 0)).toBeLessThan(2 * MiB);
    // The big hole between the two data regions became zero requests, not writes.
    expect(zeroes.some((z) => z.offset <= 2 * MiB && z.offset + z.count >= 5 * MiB)).toBe(true);
    expect(writes.some((w) => w.offset >= MiB && w.offset + w.count <= 5 * MiB)).toBe(false);
    expect(sha256File(readBack(d.uri, 'logged.img'))).toBe(sha256File(src));
  });

  it('obeys a server maximum block size that libnbd 1.14 ignores', async () => {
    const policy = ['blocksize-maximum=64K', 'blocksize-minimum=512', 'blocksize-error-policy=error'];
    // With a 512-byte minimum the export size is a multiple of 512 too.
    const aligned = path.join(dir, 'aligned.img');
    makeSparseFile(aligned, 12 * MiB, [[1000, noise(3 * MiB, 11)], [12 * MiB - 512, noise(512, 12)]]);
    const target = path.join(dir, 'policy-dst.img');
    makeSparseFile(target, 12 * MiB, [[0, noise(12 * MiB, 13)]]);
    const d = await nbdkit('--filter=blocksize-policy', 'file', target, ...policy);
    const r = ours([aligned, d.uri]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(sha256File(target)).toBe(sha256File(aligned));
    // libnbd's nbdcopy sends 256K requests and the server rejects them.
    expect(run(LIBNBD_NBDCOPY, [d.uri, 'null:']).status).not.toBe(0);
    const s = await nbdkit('--filter=blocksize-policy', 'pattern', String(4 * MiB), ...policy);
    expect(ours([s.uri, 'policy-src.img']).status).toBe(0);
    expect(run(LIBNBD_NBDCOPY, ['--', '[', 'nbdkit', 'pattern', String(4 * MiB), ']', 'policy-ref.img'], { cwd: dir }).status).toBe(0);
    expect(sha256File(path.join(dir, 'policy-src.img'))).toBe(sha256File(path.join(dir, 'policy-ref.img')));
  });

  it('uses multi-conn to a URI server that allows it, one connection otherwise', async () => {
    const log = path.join(dir, 'mc.log');
    const a = await nbdkit('--filter=log', 'pattern', String(256 * MiB), `logfile=${log}`);
    // Up to 4 connections by default, no more than the online CPUs; -T sets that cap.
    const r = ours(['-v', a.uri, 'null:']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(`"connections":${DEFAULT_CONNECTIONS}`);
    const r2 = ours(['-v', '-T', '2', a.uri, 'null:']);
    expect(r2.stderr).toMatch(/"connections":2/);
    const conns = new Set(fs.readFileSync(log, 'utf8').match(/connection=\d+ Read/g));
    expect(conns.size).toBe(DEFAULT_CONNECTIONS + 2);
    const r1 = ours(['-v', '-C', '1', a.uri, 'null:']);
    expect(r1.stderr).toMatch(/"connections":1/);
    const b = await nbdkit('--filter=multi-conn', 'pattern', String(8 * MiB), 'multi-conn-mode=disable');
    expect(ours(['-v', b.uri, 'null:']).stderr).toMatch(/"connections":1/);
  });

  it('--flush flushes the destination; --no-extents reads holes too', async () => {
    const log = path.join(dir, 'flush.log');
    const d = await nbdkit('--filter=log', 'memory', String(SIZE), `logfile=${log}`);
    expect(ours(['--flush', src, d.uri]).status).toBe(0);
    expect(fs.readFileSync(log, 'utf8')).toMatch(/Flush id=/);
    const slog = path.join(dir, 'noext.log');
    const s = await nbdkit('--filter=log', 'memory', String(8 * MiB), `logfile=${slog}`);
    expect(ours(['--no-extents', s.uri, 'null:']).status).toBe(0);
    const text = fs.readFileSync(slog, 'utf8');
    expect(text).not.toMatch(/Extents id=/);
    const read = [...text.matchAll(/Read id=\d+ offset=0x[0-9a-f]+ count=0x([0-9a-f]+)/g)].reduce((a, m) => a + parseInt(m[1]!, 16), 0);
    expect(read).toBe(8 * MiB);
  });

  it('falls back when the server refuses fast zero, or cannot zero at all', async () => {
    // Start each destination from non-zero data so the zeroes we make show in the checksum.
    fs.writeFileSync(path.join(dir, 'junk.img'), noise(SIZE, 21));
    const a = await nbdkit('--filter=nozero', 'memory', String(SIZE), 'zeromode=emulate', 'fastzeromode=slow');
    expect(ours([path.join(dir, 'junk.img'), a.uri]).status).toBe(0);
    const ra = ours(['-v', src, a.uri]);
    expect(ra.status).toBe(0);
    expect(ra.stderr).toMatch(/fast zero refused, using plain write zeroes/);
    expect(sha256File(readBack(a.uri, 'slowzero.img'))).toBe(sha256File(src));
    const b = await nbdkit('--filter=nozero', 'memory', String(SIZE), 'zeromode=none');
    expect(ours([path.join(dir, 'junk.img'), b.uri]).status).toBe(0);
    const rb = ours(['-v', src, b.uri]);
    expect(rb.status).toBe(0);
    expect(rb.stderr).toMatch(/canZero=false/);
    expect(sha256File(readBack(b.uri, 'nozero.img'))).toBe(sha256File(src));
  });

  it('one connection to a [ CMD ] server even when it offers multi-conn, as libnbd', () => {
    const cmdLog = path.join(dir, 'cmd.log');
    const r = ours(['-v', '-T', '4', '--', '[', 'nbdkit', '--filter=log', 'pattern', String(256 * MiB), `logfile=${cmdLog}`, ']', 'null:']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/"connections":1/);
    expect(new Set(fs.readFileSync(cmdLog, 'utf8').match(/connection=\d+ Read/g)).size).toBe(1);
    const q = ours(['-v', '--', '[', 'qemu-nbd', '-r', '-f', 'raw', src, ']', 'null:']);
    expect(q.status).toBe(0);
    expect(q.stderr).toMatch(/"connections":1/);
  });

  it('a stream longer than the NBD destination is an error', async () => {
    const d = await nbdkit('memory', String(MiB));
    const r = ours(['-', d.uri], noise(2 * MiB, 4));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^nbdcopy: .*source is larger than the destination/);
  });

  it('--synchronous: one request at a time, in disk order', async () => {
    const log = path.join(dir, 'sync.log');
    const d = await nbdkit('--filter=log', 'memory', String(SIZE), `logfile=${log}`);
    expect(ours(['--synchronous', src, d.uri]).status).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n');
    let open = 0;
    let last = -1;
    for (const l of lines) {
      const start = /connection=\d+ (Write|Zero) id=\d+ offset=0x([0-9a-f]+)/.exec(l);
      if (start) {
        expect(open).toBe(0);
        open++;
        const offset = parseInt(start[2]!, 16);
        expect(offset).toBeGreaterThan(last);
        last = offset;
      } else if (/\.\.\.(Write|Zero) id=\d+ return/.test(l)) {
        open--;
      }
    }
    expect(last).toBeGreaterThan(0);
    expect(sha256File(readBack(d.uri, 'sync.img'))).toBe(sha256File(src));
  });

  it('an unaligned tail to a server with a minimum block size is merged into whole blocks (libnbd 1.14 fails)', async () => {
    const min = 512;
    const exportSize = SIZE + (min - (SIZE % min)); // the next multiple of 512
    const policy = ['--filter=blocksize-policy', 'memory', String(exportSize), `blocksize-minimum=${min}`, 'blocksize-error-policy=error'];
    const d = await nbdkit(...policy);
    // Data in the last partial block: the write is merged.
    const r = ours([src, d.uri]);
    expect(r.status).toBe(0);
    const back = fs.readFileSync(readBack(d.uri, 'tail.img'));
    expect(back.length).toBe(exportSize);
    expect(sha256(back.subarray(0, SIZE))).toBe(sha256File(src));
    // A hole at the unaligned end over old data: zeroed up to the source's end, the rest kept.
    const e = await nbdkit(...policy);
    const junk = path.join(dir, 'junk.img');
    fs.writeFileSync(junk, noise(exportSize, 9));
    expect(ours([junk, e.uri]).status).toBe(0);
    const holes = path.join(dir, 'holes.img');
    fs.writeFileSync(holes, noise(4096, 8));
    fs.truncateSync(holes, SIZE);
    expect(ours([holes, e.uri]).status).toBe(0);
    const after = fs.readFileSync(readBack(e.uri, 'tail2.img'));
    expect(sha256(after.subarray(0, SIZE))).toBe(sha256File(holes));
    expect(sha256(after.subarray(SIZE))).toBe(sha256(fs.readFileSync(junk).subarray(SIZE)));
  });
});
