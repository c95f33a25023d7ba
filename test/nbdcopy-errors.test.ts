// Every way a copy can fail ends the same: exit status 1, exactly one `nbdcopy: ...` line on
// stderr, no stack, nothing left running.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processGone, startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, run, start } from './helpers/run-tool.js';
import { makeSparseFile, noise } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const MiB = 1 << 20;
const have = requireBinaries('nbdkit');
const { servers } = teardownAfterEach<RunningServer>();
let dir: string;
let src: string;

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

/** A `[ CMD ]` server writes its own messages to the shared stderr; only ours must be one line. */
function ourLines(stderr: string): string {
  return stderr.split('\n').filter((l) => l.startsWith('nbdcopy:') || /^\s+at /.test(l)).join('\n') + '\n';
}

function expectOneLineFailure(args: string[], message: RegExp): string {
  const r = run(OUR_NBDCOPY, args, { cwd: dir, timeout: 30_000 });
  const mine = args.includes('[') ? ourLines(r.stderr) : r.stderr;
  expect(mine).toMatch(message);
  expect(hasExactlyOneErrorLine(mine)).toBe(true);
  expect(r.status).toBe(1);
  return r.stderr;
}

/** Children of `pid` (the subprocess servers it started). */
function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)]);
  return r.stdout.toString().split('\n').filter(Boolean).map(Number);
}

/**
 * Polls until `ready()` holds. A fixed sleep is not enough on a loaded machine: a signal sent
 * before nbdcopy has installed its handlers kills it outright (no message, no status 1).
 */
async function until(what: string, ready: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The subprocess servers of `pid`, once there are any (nbdcopy spawns them after installing its signal handlers). */
async function subprocessesOf(pid: number): Promise<number[]> {
  let kids: number[] = [];
  await until(`a subprocess of ${pid}`, () => (kids = childrenOf(pid)).length > 0);
  return kids;
}

/** nbdcopy's exit hook SIGTERMs its subprocesses; dying takes a moment when the machine is busy. */
async function expectAllGone(pids: number[]): Promise<void> {
  await until(`processes ${pids.join(', ')} to exit`, () => pids.every(processGone), 10_000).catch(() => {});
  for (const k of pids) expect(processGone(k)).toBe(true);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  src = path.join(dir, 'src.img');
  makeSparseFile(src, 12 * MiB, [[0, noise(4 * MiB, 1)]]);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!have)('nbdcopy error paths', () => {
  it('read errors from the source (nbdkit error filter)', async () => {
    const s = await nbdkit('--filter=error', 'pattern', String(8 * MiB), 'error-pread=EIO', 'error-pread-rate=1');
    expectOneLineFailure([s.uri, 'out.img'], /read at \d+: .*(EIO|Input\/output error)/i);
    expectOneLineFailure(['--', '[', 'nbdkit', '--filter=error', 'pattern', '8M', 'error-pread=EIO', 'error-pread-rate=1', ']', 'null:'],
      /read at \d+/);
  });

  it('write and zero errors on the destination', async () => {
    const d = await nbdkit('--filter=error', 'memory', String(12 * MiB), 'error=ENOSPC', 'error-pwrite-rate=1', 'error-zero-rate=1');
    expectOneLineFailure([src, d.uri], /(write|zero) at \d+: .*(ENOSPC|No space left)/i);
  });

  it('a destination smaller than the source is refused before anything is written', async () => {
    const log = path.join(dir, 'small.log');
    const d = await nbdkit('--filter=log', 'memory', String(MiB), `logfile=${log}`);
    expectOneLineFailure([src, d.uri], /destination size \(1048576\) is smaller than source size \(12582912\)/);
    expect(fs.readFileSync(log, 'utf8')).not.toMatch(/\b(Write|Zero|Trim) id=/);
  });

  it('a source whose size is not a multiple of its minimum block size is refused before anything is written', async () => {
    const odd = path.join(dir, 'odd.img');
    fs.writeFileSync(odd, noise(5000, 9));
    const s = await nbdkit('-r', '--filter=blocksize-policy', 'file', odd, 'blocksize-minimum=4096', 'blocksize-error-policy=error');
    const log = path.join(dir, 'odd.log');
    const d = await nbdkit('--filter=log', 'memory', String(MiB), `logfile=${log}`);
    expectOneLineFailure([s.uri, d.uri], /source size \(5000\) is not a multiple of its minimum block size \(4096\), so its last 904 bytes cannot be read/);
    expect(fs.readFileSync(log, 'utf8')).not.toMatch(/\b(Write|Zero|Trim) id=/);
  });

  it('a source larger than 2^53 bytes is refused at once (its offsets would not be exact)', async () => {
    const s = await nbdkit('memory', String(2n ** 60n + 1024n));
    expectOneLineFailure([s.uri, 'null:'], /the source size \(1152921504606848000\) is larger than 9007199254740991 bytes/);
  });

  it('a read-only destination', async () => {
    const d = await nbdkit('-r', 'memory', String(12 * MiB));
    expectOneLineFailure([src, d.uri], /read-only/);
  });

  it('bad URIs, refused connections, missing or failing subprocesses', () => {
    expectOneLineFailure(['nbd+unix:///?socket=' + path.join(dir, 'no-such.sock'), 'out.img'], /no-such\.sock/);
    expectOneLineFailure(['nbd://[bad', 'out.img'], /^nbdcopy: nbd:\/\/\[bad/);
    expectOneLineFailure(['--', '[', 'no-such-nbd-server-binary', ']', 'out.img'], /no-such-nbd-server-binary/);
    expectOneLineFailure(['--', '[', 'false', ']', 'out.img'], /^nbdcopy: false: /);
    expectOneLineFailure(['--', '[', 'nbdkit', 'no-such-plugin', ']', 'out.img'], /^nbdcopy: nbdkit: /);
  });

  it('a server killed in the middle of the copy', async () => {
    const s = await nbdkit('--filter=delay', 'pattern', '1G', 'delay-read=20ms');
    // --progress=1 prints 0/100 as the copy starts: the server then dies mid-copy, not before.
    const job = start(OUR_NBDCOPY, ['--progress=1', s.uri, 'null:'], { cwd: dir });
    await until('the copy to start', () => job.stdout().startsWith('0/100\n'));
    await s.stop();
    const r = await job.done;
    expect(r.status).toBe(1);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/^nbdcopy: nbd\+unix:/);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)('%s stops the copy, reaps the subprocess, ends by the signal', async (signal) => {
    // --progress=1 prints 0/100 as the copy starts: the signal then lands mid-copy.
    const job = start(OUR_NBDCOPY, ['--progress=1', '--', '[', 'nbdkit', '--filter=delay', 'pattern', '1G', 'delay-read=20ms', ']', 'null:'], { cwd: dir });
    const kids = await subprocessesOf(job.pid);
    await until('the copy to start', () => job.stdout().startsWith('0/100\n'));
    process.kill(job.pid, signal);
    const r = await job.done;
    expect(r.status).toBeNull();
    expect(r.signal).toBe(signal);
    expect(r.stderr).toMatch(new RegExp(`^nbdcopy: interrupted by ${signal}$`, 'm'));
    expect(hasExactlyOneErrorLine(ourLines(r.stderr))).toBe(true);
    await expectAllGone(kids);
  });

  it('SIGINT while a subprocess never answers the handshake ends at once (by SIGINT) and reaps it', async () => {
    const job = start(OUR_NBDCOPY, ['--', '[', 'sleep', '30', ']', 'out.img'], { cwd: dir });
    const kids = await subprocessesOf(job.pid);
    process.kill(job.pid, 'SIGINT');
    const r = await job.done;
    expect(r.status).toBeNull();
    expect(r.signal).toBe('SIGINT');
    expect(r.stderr).toBe('nbdcopy: interrupted by SIGINT\n');
    await expectAllGone(kids);
  });
});

