// Our bin/nbdcopy reading stdin (a stream of unknown length) into NBD servers and files:
// byte-exact at odd sizes, zero runs, too-small destinations, --synchronous, stdin -> stdout.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { LIBNBD_NBDCOPY, OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { noise, sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit', LIBNBD_NBDCOPY);
const { servers } = teardownAfterEach<RunningServer>();
let dir: string;
/** Odd length; zero runs of whole blocks, of part of a block, and across a request boundary. */
let input: Buffer;

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

function ours(args: string[], stdin?: Buffer) {
  const r = run(OUR_NBDCOPY, args, { input: stdin, cwd: dir });
  if (r.status !== 0) console.error(r.stderr);
  return r;
}

/** The first `length` bytes of an export, read by libnbd's nbdcopy (the reference reader). */
function readBack(uri: string, length: number): Buffer {
  const r = run(LIBNBD_NBDCOPY, [uri, '-']);
  expect(r.status).toBe(0);
  return r.stdout.subarray(0, length);
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  input = noise(9 * MiB + 12345, 5);
  input.fill(0, MiB, 2 * MiB);
  input.fill(0, 3 * MiB + 100, 3 * MiB + 3000);
  input.fill(0, 4 * MiB - 8192, 4 * MiB + 8192);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy stdin -> NBD / file', () => {
  it.each([
    ['default', []],
    ['--synchronous', ['--synchronous']],
    ['-S 0 --request-size=65536', ['-S', '0', '--request-size=65536']],
  ])('stdin -> NBD is byte-exact (%s)', async (_name, flags) => {
    const s = await nbdkit('memory', String(16 * MiB));
    expect(ours([...flags, '-', s.uri], input).status).toBe(0);
    expect(sha256(readBack(s.uri, input.length))).toBe(sha256(input));
  });

  it('stdin -> NBD over old contents: the zero runs are zeroed, not skipped', async () => {
    const s = await nbdkit('memory', String(16 * MiB));
    expect(ours(['-', s.uri], noise(16 * MiB, 9)).status).toBe(0);
    expect(ours(['-', s.uri], input).status).toBe(0);
    expect(sha256(readBack(s.uri, input.length))).toBe(sha256(input));
  });

  it('stdin -> file is byte-exact, sized to the stream, and stays sparse in the zero runs', () => {
    const out = path.join(dir, 'out.img');
    expect(ours(['-', out], input).status).toBe(0);
    expect(fs.statSync(out).size).toBe(input.length);
    expect(sha256File(out)).toBe(sha256(input));
    // A stream ending in zeroes still gives the full size.
    const tail = Buffer.concat([noise(MiB + 7, 3), Buffer.alloc(2 * MiB + 5)]);
    expect(ours(['-', out], tail).status).toBe(0);
    expect(fs.statSync(out).size).toBe(tail.length);
    expect(sha256File(out)).toBe(sha256(tail));
  });

  it('stdin -> stdout passes the stream through unchanged', () => {
    const r = ours(['-', '-'], input);
    expect(r.status).toBe(0);
    expect(sha256(r.stdout)).toBe(sha256(input));
  });

  it('a stream longer than the NBD destination: one line, exit 1, nothing written past the end', async () => {
    const s = await nbdkit('memory', String(4 * MiB + 512));
    const r = run(OUR_NBDCOPY, ['-', s.uri], { input, cwd: dir });
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/^nbdcopy: .*source is larger than the destination/);
  });

  it('--synchronous stdin -> NBD: one request at a time, in order (nbdkit log filter)', async () => {
    const log = path.join(dir, 'sync.log');
    const s = await nbdkit('--filter=log', 'memory', String(16 * MiB), `logfile=${log}`);
    expect(ours(['--synchronous', '-', s.uri], input).status).toBe(0);
    let open = 0;
    const offsets: number[] = [];
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      if (/ (Write|Zero) id=\d+ offset=/.test(line)) {
        open++;
        expect(open).toBe(1);
        offsets.push(parseInt(/offset=0x([0-9a-f]+)/.exec(line)![1]!, 16));
      }
      if (/\.\.\.(Write|Zero) id=\d+ return/.test(line)) open--;
    }
    expect(offsets.length).toBeGreaterThan(1);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
  });

  it('without --synchronous several writes are in flight at once (nbdkit log filter)', async () => {
    const log = path.join(dir, 'async.log');
    const s = await nbdkit('--filter=log', '--filter=delay', 'memory', String(16 * MiB), `logfile=${log}`, 'delay-write=5ms');
    expect(ours(['-', s.uri], input).status).toBe(0);
    let open = 0;
    let most = 0;
    for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
      if (/ (Write|Zero) id=\d+ offset=/.test(line)) most = Math.max(most, ++open);
      if (/\.\.\.(Write|Zero) id=\d+ return/.test(line)) open--;
    }
    expect(most).toBeGreaterThan(1);
    expect(sha256(readBack(s.uri, input.length))).toBe(sha256(input));
  });
});
