// nbdcopy --blkhash and --verify end to end: libnbd 1.24's known values from nbdkit data
// sources, the same hash from every kind of source (holes never read), the hash kept apart
// from data on stdout, a verified copy, and a destination that drops writes it acknowledges.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { makeSparseFile, noise } from './helpers/files.js';
import { toolSuite } from './helpers/tool-suite.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit');
const suite = toolSuite();
const servers = suite.servers;

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

/** The definition, written plainly (as in the unit test): hash each block, then le64(size). */
function reference(image: Buffer, algorithm = 'sha256', blockSize = 65536): string {
  const outer = crypto.createHash(algorithm);
  for (let at = 0; at < image.length; at += blockSize) {
    outer.update(crypto.createHash(algorithm).update(image.subarray(at, at + blockSize)).digest());
  }
  const le = Buffer.alloc(8);
  le.writeBigUInt64LE(BigInt(image.length));
  return outer.update(le).digest('hex');
}

function ours(args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = run(OUR_NBDCOPY, args, { cwd: suite.dir, input, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr };
}

function expectOneLine(args: string[], message: string | RegExp): void {
  const r = ours(args);
  expect(r.stderr).toMatch(message);
  expect(hasExactlyOneErrorLine(r.stderr), r.stderr).toBe(true);
  expect(r.status).toBe(1);
}

describe.skipIf(!have)('nbdcopy --blkhash', () => {
  it.each([
    ['""', 'sha256', 'af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc'],
    ['"hello"', 'md5', 'f741ac9ce55f5325906bb14e9c05d467'],
    ['"hello"', 'md5/4', '8262896de34125dec173722c920e8bd0'],
    ['"12345678"*131072', 'sha256', 'cbb388edd25e567b85f504c7b345497f9fb4f6bbf4e39768809184b9f9e678f8'],
    ['"12345678"*131072', '', 'cbb388edd25e567b85f504c7b345497f9fb4f6bbf4e39768809184b9f9e678f8'],
  ])('nbdkit data %s, --blkhash=%s: libnbd 1.24\'s known value', (data, alg, want) => {
    const r = ours([alg === '' ? '--blkhash' : `--blkhash=${alg}`, '--', '[', 'nbdkit', 'data', data, ']', 'null:']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${want}\n`);
  });

  it('gives the same hash from a file, a pipe, a URI and a [ CMD ] server, without reading holes', async () => {
    const size = 9 * MiB + 1234;
    const file = path.join(suite.dir, 'holes.img');
    // Data, a 4 MiB hole, data ending mid-block, a zero-filled data block, and a short tail.
    makeSparseFile(file, size, [[0, noise(MiB + 100, 3)], [5 * MiB + 7, noise(2 * MiB, 4)], [8 * MiB, Buffer.alloc(65536)], [size - 1000, noise(1000, 5)]]);
    const image = fs.readFileSync(file);
    for (const alg of ['sha256', 'sha512/1M', 'md5/512']) {
      const [name, bs] = alg.split('/');
      const want = `${reference(image, name, bs === undefined ? 65536 : bs === '1M' ? MiB : 512)}\n`;
      expect(ours([`--blkhash=${alg}`, file, 'null:']).stdout, `file ${alg}`).toBe(want);
      expect(ours([`--blkhash=${alg}`, '-', 'null:'], image).stdout, `stdin ${alg}`).toBe(want);
    }
    // Over NBD with a log of every request: the hole is never read.
    const logFile = path.join(suite.dir, 'reads.log');
    const server = await nbdkit('--filter=log', 'file', file, `logfile=${logFile}`);
    const want = `${reference(image)}\n`;
    expect(ours(['--blkhash', server.uri, 'null:']).stdout).toBe(want);
    const reads = fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => / Read id=/.test(l) && !/return/.test(l));
    let readBytes = 0;
    for (const l of reads) {
      const offset = Number(/offset=(0x[0-9a-f]+)/.exec(l)![1]);
      const count = Number(/count=(0x[0-9a-f]+)/.exec(l)![1]);
      readBytes += count;
      expect(offset + count <= MiB + 4096 || offset >= 5 * MiB, `read [${offset}, +${count}) touches the hole`).toBe(true);
    }
    expect(readBytes).toBeGreaterThan(0);
    expect(readBytes).toBeLessThan(size - 3 * MiB);
    expect(ours(['--blkhash', '--', '[', 'nbdkit', 'file', file, ']', 'null:']).stdout).toBe(want);
  });

  it('writes the hash to --blkhash-file, apart from data on stdout', () => {
    const image = noise(3 * MiB + 5, 9);
    const file = path.join(suite.dir, 'src.bin');
    fs.writeFileSync(file, image);
    const hashFile = path.join(suite.dir, 'hash.txt');
    const r = run(OUR_NBDCOPY, ['--blkhash=sha1/64k', `--blkhash-file=${hashFile}`, file, '-'], { cwd: suite.dir });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, image)).toBe(0);
    expect(fs.readFileSync(hashFile, 'utf8')).toBe(`${reference(image, 'sha1')}\n`);
    // --blkhash-file alone means the default hash.
    fs.rmSync(hashFile);
    expect(ours([`--blkhash-file=${hashFile}`, file, 'null:']).stdout).toBe('');
    expect(fs.readFileSync(hashFile, 'utf8')).toBe(`${reference(image)}\n`);
  });

  it('refuses bad values and a hash that would mix with data, in one line', () => {
    expectOneLine(['--blkhash=sha3', 'a', 'null:'], "nbdcopy: --blkhash: unknown digest 'sha3' (md5, sha1, sha256 or sha512)");
    expectOneLine(['--blkhash=sha256/3', 'a', 'null:'], "nbdcopy: --blkhash: the block size must be a power of 2 up to 1G, not '3'");
    expectOneLine(['--blkhash=md5/x', 'a', 'null:'], "nbdcopy: --blkhash: could not parse size 'x'");
    expectOneLine(['--blkhash-file=', 'a', 'null:'], "nbdcopy: --blkhash-file: expected a value, got ''");
    expectOneLine(['--blkhash', 'a', '-'], 'nbdcopy: --blkhash: the data goes to stdout, so the hash cannot: use --blkhash-file=FILE');
    // New long options join getopt's list of possibilities.
    expectOneLine(['--ve', 'a', 'null:'], "nbdcopy: option '--ve' is ambiguous; possibilities: '--verbose' '--verify' '--version'");
  });
});

describe.skipIf(!have)('nbdcopy --verify', () => {
  it('passes a good copy, reading the destination back', async () => {
    const file = path.join(suite.dir, 'v-src.img');
    makeSparseFile(file, 6 * MiB, [[0, noise(MiB, 6)], [4 * MiB, noise(MiB, 7)]]);
    const out = path.join(suite.dir, 'v-out.img');
    const r = ours(['-v', '--verify', file, out]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/nbdcopy: verify: 6291456 bytes of .*v-out\.img match the source/);
    expect(Buffer.compare(fs.readFileSync(out), fs.readFileSync(file))).toBe(0);
    const memory = await nbdkit('memory', '6M');
    expect(ours(['--verify', '--flush', file, memory.uri]).status).toBe(0);
  });

  it('fails with the first differing block when the destination drops acknowledged writes', async () => {
    const disk = path.join(suite.dir, 'liar.img');
    fs.writeFileSync(disk, Buffer.alloc(4 * MiB));
    // Writes inside [1 MiB + 64 KiB, 1 MiB + 320 KiB) are acknowledged and thrown away.
    const liar = await nbdkit('eval', 'get_size=echo 4194304', 'can_write=exit 0', 'can_flush=exit 0', 'flush=exit 0',
      `pread=dd if=${disk} skip=$4 count=$3 iflag=skip_bytes,count_bytes status=none`,
      `pwrite=if [ $4 -lt 1376256 ] && [ $(($4 + $3)) -gt 1114112 ]; then cat >/dev/null; `
      + `else dd of=${disk} seek=$4 conv=notrunc oflag=seek_bytes status=none; fi`);
    const r = ours(['--verify', '--flush', '--', '[', 'nbdkit', 'pattern', '4M', ']', liar.uri]);
    expect(r.stderr).toBe(`nbdcopy: verify: destination differs from source at offset ${MiB} (block of 65536 bytes)\n`);
    expect(r.status).toBe(1);
    // The copy did reach the server: without --verify nobody would have known.
    expect(ours(['--', '[', 'nbdkit', 'pattern', '4M', ']', liar.uri]).status).toBe(0);
  });

  it('is refused up front for destinations that cannot be read back', () => {
    const file = path.join(suite.dir, 'v-src.img');
    expectOneLine(['--verify', file, 'null:'], 'nbdcopy: --verify: null: cannot be read back');
    expectOneLine(['--verify', file, '-'], 'nbdcopy: --verify: stdout cannot be read back');
    expectOneLine(['--verify=1', file, 'null:'], "nbdcopy: option '--verify' doesn't allow an argument");
  });
});
