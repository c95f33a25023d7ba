// The stream endpoint's own I/O (non-blocking preadv2/pwritev2 first, the thread pool when
// they would wait): every kind of stdin/stdout still works byte-exact: a regular file,
// /dev/null, a pipe whose reader or writer is slow, and a descriptor someone else made
// non-blocking (O_NONBLOCK lives in the open file description, shared between processes).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { noise, sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
let dir: string;
let input: string;
let data: Buffer;

/** Runs our nbdcopy with the given stdio; resolves with its exit status and stderr. */
function nbdcopy(args: string[], stdio: [number | 'ignore' | 'pipe', number | 'ignore' | 'pipe']) {
  const child = spawn(OUR_NBDCOPY, args, { cwd: dir, stdio: [stdio[0], stdio[1], 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 40_000);
  return new Promise<{ status: number | null; stderr: string }>((resolve) => {
    child.on('close', (status) => {
      clearTimeout(kill);
      resolve({ status, stderr });
    });
  });
}

/** `sh -c SCRIPT` with the given stdin/stdout; resolves with its exit status. */
function sh(script: string, stdio: [number | 'ignore', number | 'ignore']): Promise<number | null> {
  const child = spawn('sh', ['-c', script], { cwd: dir, stdio: [stdio[0], stdio[1], 'inherit'] });
  return new Promise((resolve) => child.on('close', resolve));
}

/** A FIFO with both ends open non-blocking (the reader must exist before the writer). */
function openFifo(name: string): { read: number; write: number } {
  const fifo = path.join(dir, name);
  fs.rmSync(fifo, { force: true });
  execFileSync('mkfifo', [fifo]);
  const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;
  const read = fs.openSync(fifo, O_RDONLY | O_NONBLOCK);
  const write = fs.openSync(fifo, O_WRONLY | O_NONBLOCK);
  return { read, write };
}

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  data = noise(6 * MiB + 777, 31);
  data.fill(0, 2 * MiB, 3 * MiB);
  input = path.join(dir, 'in.bin');
  fs.writeFileSync(input, data);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('stream endpoint I/O', () => {
  it('stdout is a regular file, stdin is a regular file', async () => {
    const out = path.join(dir, 'out.bin');
    const outFd = fs.openSync(out, 'w');
    const inFd = fs.openSync(input, 'r');
    const r = await nbdcopy(['-', '-'], [inFd, outFd]);
    fs.closeSync(outFd);
    fs.closeSync(inFd);
    expect(r.status).toBe(0);
    expect(sha256File(out)).toBe(sha256(data));
  });

  it('stdout is /dev/null', async () => {
    const nul = fs.openSync('/dev/null', 'w');
    const r = await nbdcopy([input, '-'], ['ignore', nul]);
    fs.closeSync(nul);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });

  it('stdout is a non-blocking pipe whose reader starts late', async () => {
    const { read, write } = openFifo('out.fifo');
    const out = path.join(dir, 'late.bin');
    // The pipe fills up at once; writes then meet EAGAIN until the reader wakes up.
    const reader = sh(`sleep 0.5; exec cat > ${JSON.stringify(out)}`, [read, 'ignore']);
    const r = await nbdcopy([input, '-'], ['ignore', write]);
    fs.closeSync(write);
    fs.closeSync(read);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(await reader).toBe(0);
    expect(sha256File(out)).toBe(sha256(data));
  });

  it('stdin is a non-blocking pipe fed slowly, in pieces', async () => {
    const { read, write } = openFifo('in.fifo');
    const part = path.join(dir, 'part.bin');
    fs.writeFileSync(part, data.subarray(0, 100_001));
    const rest = path.join(dir, 'rest.bin');
    fs.writeFileSync(rest, data.subarray(100_001));
    const writer = sh(`sleep 0.2; cat ${JSON.stringify(part)}; sleep 0.3; cat ${JSON.stringify(rest)}`, ['ignore', write]);
    fs.closeSync(write);
    const out = path.join(dir, 'slow.bin');
    const r = await nbdcopy(['-', out], [read, 'ignore']);
    fs.closeSync(read);
    expect(await writer).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(sha256File(out)).toBe(sha256(data));
  });

  it('a reader that goes away: one line, exit 1', async () => {
    const { read, write } = openFifo('gone.fifo');
    const reader = sh('head -c 1000 > /dev/null', [read, 'ignore']);
    fs.closeSync(read);
    const big = path.join(dir, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(0));
    fs.truncateSync(big, 64 * MiB);
    const r = await nbdcopy([big, '-'], ['ignore', write]);
    fs.closeSync(write);
    await reader;
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^nbdcopy: stdout: write: Broken pipe\n$/);
  });
});
