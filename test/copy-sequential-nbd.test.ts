// Our bin/nbdcopy from NBD servers (nbdkit) to stdout: byte-exact with holes, an odd size and
// several connections (reads run ahead, the pipe gets them in order); failures in the middle
// of the stream exit 1 with one line, never a silent success.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { makeSparseFile, noise, sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit');
const { servers } = teardownAfterEach<RunningServer>();
let dir: string;
let src: string;
const SIZE = 21 * MiB + 4097; // odd: not a multiple of 512 nor of the request size

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

function ours(args: string[]) {
  const r = run(OUR_NBDCOPY, args, { cwd: dir });
  if (r.status !== 0) console.error(r.stderr);
  return r;
}

/** Runs our nbdcopy with stdout to a pipe; `received()` counts the bytes so far. */
function streaming(args: string[]) {
  const child = spawn(OUR_NBDCOPY, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const head: Buffer[] = [];
  let headBytes = 0;
  let received = 0;
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    received += d.length;
    if (headBytes < MiB) {
      head.push(d);
      headBytes += d.length;
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 40_000);
  const done = new Promise<{ status: number | null; stderr: string }>((resolve) => {
    child.on('close', (status) => {
      clearTimeout(kill);
      resolve({ status, stderr });
    });
  });
  return { received: () => received, head: () => Buffer.concat(head), done };
}

async function until(what: string, ready: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (ready()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** True when `b` is the start of nbdkit's pattern disk (each 8 bytes hold their offset). */
function isPatternPrefix(b: Buffer): boolean {
  for (let i = 0; i + 8 <= b.length; i += 8) if (b.readBigUInt64BE(i) !== BigInt(i)) return false;
  return true;
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  src = path.join(dir, 'src.img');
  // Data, holes (one inside a request), data again up to the odd end.
  makeSparseFile(src, SIZE, [
    [0, noise(3 * MiB + 333, 1)], [7 * MiB + 512, noise(MiB, 2)], [12 * MiB + 100_000, noise(50_000, 3)], [SIZE - 9000, noise(9000, 4)],
  ]);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy NBD -> stdout', () => {
  it.each([
    ['default', []],
    ['-C 4', ['-C', '4', '-T', '4']],
    ['-C 1', ['-C', '1']],
    ['--synchronous', ['--synchronous']],
    ['--request-size=65536 --requests=3', ['--request-size=65536', '--requests=3', '-T', '4']],
  ])('byte-exact with holes and an odd size (%s)', async (_name, flags) => {
    // nbdkit's file plugin: multi-conn, extents from SEEK_HOLE.
    const s = await nbdkit('file', src);
    const r = ours(['-v', ...flags, s.uri, '-']);
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(SIZE);
    expect(sha256(r.stdout)).toBe(sha256File(src));
    // One connection to the source, whatever -C says, as libnbd for a pipe.
    expect(r.stderr).toMatch(/"connections":1,/);
    if (flags.includes('--synchronous')) expect(r.stderr).toMatch(/"connections":1,"lanesPerConnection":1/);
  });

  it('a [ nbdkit ] subprocess source to a pipe, -C 3', () => {
    const r = ours(['-C', '3', '-T', '3', '--', '[', 'nbdkit', 'file', src, ']', '-']);
    expect(r.status).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256File(src));
  });

  it('read errors in the middle of the stream (nbdkit error filter): exit 1, one line', async () => {
    const trigger = path.join(dir, 'fail-now');
    fs.rmSync(trigger, { force: true });
    const s = await nbdkit('--filter=error', '--filter=delay', 'pattern', '1G', 'delay-read=20ms',
      'error-pread=EIO', 'error-pread-rate=1', `error-file=${trigger}`);
    const job = streaming([s.uri, '-']);
    await until('the first MiB on stdout', () => job.received() >= MiB);
    fs.writeFileSync(trigger, '');
    const r = await job.done;
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/^nbdcopy: nbd\+unix:.*read at \d+: .*EIO/);
    expect(job.received()).toBeLessThan(1024 * MiB);
    expect(isPatternPrefix(job.head())).toBe(true);
  });

  it('the server killed in the middle of the stream: exit 1, one line', async () => {
    const s = await nbdkit('--filter=delay', 'pattern', '1G', 'delay-read=20ms');
    const job = streaming([s.uri, '-']);
    await until('the first MiB on stdout', () => job.received() >= MiB);
    await s.stop();
    const r = await job.done;
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/^nbdcopy: nbd\+unix:/);
    expect(job.received()).toBeLessThan(1024 * MiB);
    expect(isPatternPrefix(job.head())).toBe(true);
  });
});
