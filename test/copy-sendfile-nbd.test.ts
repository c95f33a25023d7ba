// File -> NBD payloads sent with sendfile(2) (NbdClient.pwriteFromFile, the copier's
// writeFromFile): byte-exact copies through the sendfile path and through the forced buffer
// fallback, a server dying mid-copy, and a file shorter than the request.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient, connect } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { LIBNBD_NBDCOPY, OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine } from './helpers/run-tool.js';
import { makeSparseFile, noise, sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit', LIBNBD_NBDCOPY, '/usr/bin/time');
const { servers, clients } = teardownAfterEach<RunningServer>();
afterEach(() => {
  delete process.env['NBD_TOOLKIT_NO_SENDFILE'];
});
let dir: string;
let src: string;
/** Odd size; data, a hole, data across request boundaries, an odd tail. */
const SIZE = 9 * MiB + 4097;
const SENDFILE_LINE = /writes from file: (\d+) bytes by sendfile, (\d+) bytes copied/;

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

function ours(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(OUR_NBDCOPY, args, { cwd: dir, timeout: 50_000, env: { ...process.env, NBD_DEBUG: '', ...env } });
  return { status: r.status, stderr: r.stderr.toString() };
}

/** Reads a whole export back with libnbd's nbdcopy (the reference reader). */
function readBack(uri: string, name: string): string {
  const file = path.join(dir, name);
  const r = spawnSync(LIBNBD_NBDCOPY, [uri, file]);
  expect(r.status).toBe(0);
  return file;
}

/** A destination full of noise, so holes the copy must zero show in the checksum. */
function dirty(uri: string): void {
  const file = path.join(dir, 'noise.img');
  fs.writeFileSync(file, noise(SIZE, 9));
  expect(spawnSync(LIBNBD_NBDCOPY, [file, uri]).status).toBe(0);
}

/** Runs our nbdcopy SOURCE DEST, does `meanwhile` once it reports progress, and waits for its end. */
async function copyInterrupted(source: string, destination: string, meanwhile: () => unknown, options: string[] = []) {
  const child = spawn(OUR_NBDCOPY, ['--progress=1', ...options, source, destination], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<[number | null, string | null]>((resolve) => child.on('close', (code, signal) => resolve([code, signal])));
  for (let i = 0; i < 400 && !stdout.startsWith('0/100\n'); i++) await new Promise((r) => setTimeout(r, 25));
  await meanwhile();
  const [status, signal] = await done;
  return { status, signal, stderr };
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  src = path.join(dir, 'src.img');
  makeSparseFile(src, SIZE, [
    [0, noise(70_001, 1)], [3 * MiB + 512, noise(2 * MiB + 3, 2)], [SIZE - 777, noise(777, 3)],
  ]);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy file -> NBD with sendfile', () => {
  it('odd size, holes, 4 connections: byte-exact, payloads by sendfile', async () => {
    const s = await nbdkit('memory', String(SIZE));
    dirty(s.uri);
    const r = ours(['-v', '-T', '4', src, s.uri]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/"connections":4/);
    const m = SENDFILE_LINE.exec(r.stderr);
    expect(m).not.toBeNull();
    const [sent, copied] = [Number(m![1]), Number(m![2])];
    expect(sent).toBeGreaterThan(0);
    // Holes are zero requests: only the data extents travel as payload.
    expect(sent + copied).toBeLessThan(SIZE);
    expect(sha256File(readBack(s.uri, 'a.img'))).toBe(sha256File(src));
  });

  it('written zeroes inside data still become zero requests (-S looks through a memory map)', async () => {
    // Allocated, all-zero blocks: no hole for SEEK_DATA to find, only -S can see them.
    const zeroes = path.join(dir, 'zeroes.img');
    const bytes = noise(SIZE, 6);
    bytes.fill(0, 2 * MiB, 2 * MiB + 1024 * 1024 + 4096);
    fs.writeFileSync(zeroes, bytes);
    const log = path.join(dir, 'zeroes.log');
    const s = await nbdkit('--filter=log', 'memory', String(SIZE), `logfile=${log}`);
    dirty(s.uri);
    const r = ours(['-v', zeroes, s.uri]);
    expect(r.status).toBe(0);
    const m = SENDFILE_LINE.exec(r.stderr);
    expect(Number(m?.[1])).toBeGreaterThan(0);
    // The zero blocks (1 MiB + 4 KiB from 2 MiB) travelled as zero requests, not as payload.
    expect(Number(m![1]) + Number(m![2])).toBe(SIZE - (1024 * 1024 + 4096));
    expect(fs.readFileSync(log, 'utf8')).toMatch(/(Zero|Trim) id=\d+ offset=0x200000 /);
    expect(sha256File(readBack(s.uri, 'z.img'))).toBe(sha256(bytes));
    // -S 0 turns detection off: every byte is payload.
    const t = await nbdkit('memory', String(SIZE));
    const r0 = ours(['-v', '-S', '0', zeroes, t.uri]);
    const m0 = SENDFILE_LINE.exec(r0.stderr);
    expect(Number(m0![1]) + Number(m0![2])).toBe(SIZE);
    expect(sha256File(readBack(t.uri, 'z0.img'))).toBe(sha256(bytes));
  });

  it('looking at a big file through its memory map does not keep it in our RSS', async () => {
    const size = 256 * MiB;
    const big = path.join(dir, 'rss.img');
    fs.writeFileSync(big, noise(size, 12));
    const s = await nbdkit('memory', String(size));
    // GNU time's %M: the peak resident set in KiB (mapped file pages count while mapped).
    const r = spawnSync('/usr/bin/time', ['-f', '%M', OUR_NBDCOPY, '-v', big, s.uri], { cwd: dir, timeout: 50_000 });
    const stderr = r.stderr.toString();
    expect(r.status).toBe(0);
    expect(Number(SENDFILE_LINE.exec(stderr)?.[1])).toBeGreaterThan(0);
    const peakKiB = Number(stderr.trim().split('\n').pop());
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB * 1024).toBeLessThan(size * 0.6);
    fs.rmSync(big);
  });

  it('one connection, synchronous-sized requests (--request-size=4096), byte-exact', async () => {
    const s = await nbdkit('memory', String(SIZE));
    dirty(s.uri);
    const r = ours(['-v', '-C', '1', '--request-size=4096', src, s.uri]);
    expect(r.status).toBe(0);
    expect(Number(SENDFILE_LINE.exec(r.stderr)?.[1])).toBeGreaterThan(0);
    expect(sha256File(readBack(s.uri, 'b.img'))).toBe(sha256File(src));
  });

  it('forced fallback (NBD_TOOLKIT_NO_SENDFILE=1) reads into buffers and copies the same bytes', async () => {
    const s = await nbdkit('memory', String(SIZE));
    dirty(s.uri);
    const r = ours(['-v', src, s.uri], { NBD_TOOLKIT_NO_SENDFILE: '1' });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(SENDFILE_LINE);
    expect(sha256File(readBack(s.uri, 'c.img'))).toBe(sha256File(src));
  });

  it('a server killed in the middle of the copy: exit 1, one line', async () => {
    const big = path.join(dir, 'big.img');
    fs.writeFileSync(big, noise(48 * MiB, 5));
    const s = await nbdkit('--filter=delay', 'memory', String(48 * MiB), 'delay-write=20ms');
    const r = await copyInterrupted(big, s.uri, () => s.stop());
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/^nbdcopy: nbd\+unix:/);
  });
});

describe.skipIf(!have)('nbdcopy file -> NBD when the source file shrinks mid-copy', () => {
  it('fails with one line and exit 1, not SIGBUS from its memory map', async () => {
    const shrinking = path.join(dir, 'shrinking.img');
    fs.writeFileSync(shrinking, noise(48 * MiB, 13));
    const s = await nbdkit('--filter=delay', 'memory', String(48 * MiB), 'delay-write=20ms');
    // Few requests in flight (192 writes, 4 at a time, 20 ms each: about 1 s), so the file
    // surely shrinks mid-copy even on a loaded machine; with the defaults every write could
    // be on its way before the truncation.
    const r = await copyInterrupted(shrinking, s.uri, () => fs.truncateSync(shrinking, MiB), ['-C', '1', '-R', '4']);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
  });
});

describe.skipIf(!have)('NbdClient.pwriteFromFile', () => {
  const FILE_SIZE = 300_000;
  let file: string;
  let fd: number;
  beforeAll(() => {
    if (!have) return;
    file = path.join(dir, 'short.img');
    fs.writeFileSync(file, noise(FILE_SIZE, 7));
    fd = fs.openSync(file, 'r');
  });
  afterAll(() => {
    if (fd !== undefined) fs.closeSync(fd);
  });

  async function open(): Promise<NbdClient> {
    const s = await nbdkit('memory', String(MiB));
    const c = await connect(s.uri);
    clients.push(c);
    await NbdClient.loadFileSupport();
    return c;
  }

  async function writesExactly(c: NbdClient): Promise<void> {
    let sent = 0;
    await Promise.all([
      c.pwriteFromFile(fd, 4096, 200_001, 1000, undefined, () => sent++),
      c.pwriteFromFile(fd, 0, 3, 600_000),
    ]);
    expect(sent).toBe(1);
    const back = Buffer.alloc(200_001);
    await c.pread(back, 1000);
    const want = fs.readFileSync(file);
    expect(sha256(back)).toBe(sha256(want.subarray(4096, 4096 + 200_001)));
    const tail = Buffer.alloc(3);
    await c.pread(tail, 600_000);
    expect(tail.equals(want.subarray(0, 3))).toBe(true);
  }

  it('sendfile path: exact bytes; a short file fails the request and the connection', async () => {
    const c = await open();
    expect(c.sendsFromFile).toBe(true);
    await writesExactly(c);
    expect(c.fileSendStats.sendfileBytes).toBeGreaterThan(0);
    const err = await c.pwriteFromFile(fd, FILE_SIZE - 100, 4096, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).code).toBe('EIO');
    expect((err as NbdError).message).toMatch(/file ends at offset 300000, 3996 bytes short/);
    // The header had gone out: the connection cannot continue.
    expect(c.state).toBe('dead');
  });

  it('buffer path (forced): exact bytes; a short file fails only that request', async () => {
    process.env['NBD_TOOLKIT_NO_SENDFILE'] = '1';
    const c = await open();
    expect(c.sendsFromFile).toBe(false);
    await writesExactly(c);
    const err = await c.pwriteFromFile(fd, FILE_SIZE - 100, 4096, 0).catch((e: unknown) => e);
    expect((err as NbdError).code).toBe('EIO');
    expect(c.state).toBe('ready');
    await c.pwriteFromFile(fd, 0, 512, 0);
  });
});
