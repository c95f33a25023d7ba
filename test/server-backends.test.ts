// Backends on their own (memory sparseness, pattern bytes, sparse-random determinism, file
// holes), size and fault-flag parsing, and the nbdserve CLI's process-level behaviour.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import {
  FileBackend, MemoryBackend, PatternBackend, SparseRandomBackend, createBackend, fillPattern, parseDelay,
  parseErrorRate, parseSize,
} from '../src/server/index.js';
import { canConnectUnix } from './helpers/servers.js';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();

/** Polls `ready` (fixed sleeps race with a slow start on a loaded machine). */
async function until(what: string, ready: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The pid in a pid file once it is fully written (it exists, empty, for a moment first). */
function pidIn(path: string): number {
  return existsSync(path) ? Number(readFileSync(path, 'utf8').trim() || NaN) : NaN;
}

const tempDir = (): string => cleanups.tempDir('server-backends-');

describe('sizes and fault flags', () => {
  it('parses nbdkit-style sizes', () => {
    expect(parseSize('512')).toBe(512);
    expect(parseSize('1k')).toBe(1024);
    expect(parseSize('1M')).toBe(1024 ** 2);
    expect(parseSize('4G')).toBe(4 * 1024 ** 3);
    expect(parseSize('1T')).toBe(1024 ** 4);
    expect(parseSize('2MiB')).toBe(2 * 1024 ** 2);
    expect(() => parseSize('1X')).toThrow(/cannot parse size/);
    expect(() => parseSize('')).toThrow();
  });

  it('parses --error-rate and --delay', () => {
    expect(parseErrorRate('read=0.1:EIO').errors).toEqual({ read: { rate: 0.1, errno: 'EIO' } });
    expect(parseErrorRate('pwrite=50%:ENOSPC').errors).toEqual({ write: { rate: 0.5, errno: 'ENOSPC' } });
    expect(parseErrorRate('all=1').errors).toEqual({ all: { rate: 1, errno: 'EIO' } });
    expect(() => parseErrorRate('read=2')).toThrow(/0..1/);
    expect(() => parseErrorRate('bogus=0.1')).toThrow(/unknown request kind/);
    expect(() => parseErrorRate('read=0.1:EWHAT')).toThrow(/unknown errno/);
    expect(parseDelay('write=50').delays).toEqual({ write: 50 });
    expect(parseDelay('read=1s').delays).toEqual({ read: 1000 });
  });

  it('backend factory: bare or key=value magic parameter, unknown parameters rejected', async () => {
    expect((await createBackend('memory', ['size=3M'])).size).toBe(3 * 1024 ** 2);
    expect((await createBackend('null', ['1G'])).size).toBe(1024 ** 3);
    await expect(createBackend('memory', [])).rejects.toThrow(/missing size/);
    await expect(createBackend('memory', ['1M', 'colour=red'])).rejects.toThrow(/unknown parameter/);
    await expect(createBackend('nope', ['1M'])).rejects.toThrow(/unknown backend/);
    await expect(createBackend('file', ['/nonexistent/x'])).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('backends', () => {
  it('memory: only written pages take memory; trim and zero give them back; extents follow', () => {
    const P = 16384; // the page
    const m = new MemoryBackend(1024 ** 4);
    m.write(Buffer.alloc(10, 1), 1024 ** 3 - 5); // straddles two pages
    expect(m.allocatedBytes).toBe(2 * P);
    const r = Buffer.alloc(20, 9);
    m.read(r, 1024 ** 3 - 10);
    expect([...r]).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    expect(m.extents(1024 ** 3 - P, 3 * P)).toEqual([{ length: 2 * P, flags: 0 }, { length: P, flags: 3 }]);
    m.trim(0, 1024 ** 4);
    expect(m.allocatedBytes).toBe(0);
    expect(m.extents(0, 1024 ** 4)).toEqual([{ length: 1024 ** 4, flags: 3 }]);
    m.write(Buffer.alloc(P, 2), 0);
    m.zero(100, 10, { noHole: false, fua: false, fast: false }); // partial page: zero in place
    const z = Buffer.alloc(120);
    m.read(z, 0);
    expect(z.subarray(100, 110).every((x) => x === 0)).toBe(true);
    expect(z[99]).toBe(2);
    expect(m.allocatedBytes).toBe(P);
  });

  it('memory: a page left all zeroes by partial trims and zeroes is freed; zeroes written over nothing take nothing', () => {
    const P = 16384;
    const m = new MemoryBackend(64 * 1024 * 1024);
    m.write(Buffer.alloc(8192, 3), 4096); // within page 0
    m.write(Buffer.alloc(3 * P, 0), 10 * P); // zeroes where nothing is stored
    expect(m.allocatedBytes).toBe(P);
    m.trim(4096, 4096);
    expect(m.allocatedBytes).toBe(P); // 4 KiB of data left
    m.zero(8192, 4096, { noHole: false, fua: false, fast: false });
    expect(m.allocatedBytes).toBe(0);
    expect(m.extents(0, 2 * P)).toEqual([{ length: 2 * P, flags: 3 }]);
    const back = Buffer.alloc(P, 9);
    m.read(back, 0);
    expect(back.equals(Buffer.alloc(P))).toBe(true);
    // Zeroes written into a stored page are data like any other: the page stays.
    m.write(Buffer.alloc(100, 5), P + 10);
    m.write(Buffer.alloc(P, 0), P);
    expect(m.allocatedBytes).toBe(P);
    // A long trim (the sorted walk) frees the same way as a short one (page by page).
    for (let i = 0; i < 300; i++) m.write(Buffer.alloc(10, 1), i * P + 20);
    m.trim(0, 300 * P);
    expect(m.allocatedBytes).toBe(0);
  });

  it('memory: short-range extents (direct page lookups) agree with the sorted-page walk', () => {
    const m = new MemoryBackend(64 * 1024 * 1024);
    for (const off of [0, 70000, 5 * 65536, 5 * 65536 + 100, 9 * 65536 - 1, 40 * 65536]) m.write(Buffer.alloc(10, 1), off);
    const long = m.extents(0, 64 * 1024 * 1024); // more than 256 pages: the sorted walk
    const flat = (ex: Array<{ length: number; flags: number }>): number[] => ex.flatMap((e) => Array(e.length / 4096).fill(e.flags));
    const ref = flat(long);
    for (let start = 0; start < 48 * 65536; start += 3 * 65536) {
      const short = m.extents(start, 16 * 65536);
      expect(flat(short)).toEqual(ref.slice(start / 4096, start / 4096 + 256));
    }
  });

  it('pattern: big-endian offsets in every 8-byte word, at any offset and alignment', () => {
    const p = new PatternBackend(8 * 1024 ** 3);
    const b = Buffer.alloc(64);
    p.read(b, 5 * 1024 ** 3);
    for (let i = 0; i < 8; i++) expect(b.readBigUInt64BE(i * 8)).toBe(BigInt(5 * 1024 ** 3 + i * 8));
    const odd = Buffer.alloc(13);
    p.read(odd, 4 * 1024 ** 3 - 3);
    const ref = Buffer.alloc(32);
    for (let i = 0; i < 4; i++) ref.writeBigUInt64BE(BigInt(4 * 1024 ** 3 - 8 + i * 8), i * 8);
    expect(odd.equals(ref.subarray(5, 18))).toBe(true);
    // The fast path across a 64 KiB block boundary equals the slow one.
    const fast = Buffer.alloc(131072);
    fillPattern(fast, 0x1_2345_0000 - 65536);
    for (let i = 0; i < 16384; i += 1000) expect(fast.readBigUInt64BE(i * 8)).toBe(BigInt(0x1_2345_0000 - 65536 + i * 8));
  });

  it('sparse-random: deterministic by seed, ~percent data, holes read as zero', () => {
    const a = new SparseRandomBackend(1024 ** 3, { seed: 9 });
    const b = new SparseRandomBackend(1024 ** 3, { seed: 9 });
    const c = new SparseRandomBackend(1024 ** 3, { seed: 10 });
    expect(a.dataBytes).toBe(b.dataBytes);
    expect(a.dataBytes / 1024 ** 3).toBeGreaterThan(0.005);
    expect(a.dataBytes / 1024 ** 3).toBeLessThan(0.02);
    const first = a.extents(0, 1024 ** 3).find((e) => e.flags === 0)!;
    const start = a.extents(0, 1024 ** 3)[0]!.length;
    const x = Buffer.alloc(first.length);
    const y = Buffer.alloc(first.length);
    a.read(x, start);
    b.read(y, start);
    expect(x.equals(y)).toBe(true);
    expect(x.every((v) => v === 0)).toBe(false);
    expect(c.extents(0, 1024 ** 3)).not.toEqual(a.extents(0, 1024 ** 3));
    const hole = Buffer.alloc(4096, 1);
    a.read(hole, 0);
    expect(hole.every((v) => v === 0)).toBe(true);
    const half = new SparseRandomBackend(64 * 1024 ** 2, { percent: 50 });
    expect(half.dataBytes / (64 * 1024 ** 2)).toBeGreaterThan(0.4);
  });

  it('file: SEEK_DATA holes in block status, trim punches holes, zero with NO_HOLE keeps data zeroed', async () => {
    const dir = tempDir();
    const path = join(dir, 'disk.img');
    writeFileSync(path, Buffer.alloc(0));
    spawnSync('truncate', ['-s', '8M', path]);
    const f = await FileBackend.open(path);
    cleanups.push(() => f.close());
    await f.write(Buffer.alloc(1024 * 1024, 0x42), 2 * 1024 * 1024, true);
    const ext = f.extents(0, 8 * 1024 * 1024);
    expect(ext[0]).toEqual({ length: 2 * 1024 * 1024, flags: 3 });
    expect(ext[1]).toEqual({ length: 1024 * 1024, flags: 0 });
    const before = statSync(path).blocks;
    await f.trim(2 * 1024 * 1024, 512 * 1024, false);
    expect(statSync(path).blocks).toBeLessThan(before);
    await f.zero(2 * 1024 * 1024 + 512 * 1024, 4096, { noHole: true, fua: false, fast: false });
    await f.flush();
    const r = Buffer.alloc(1024 * 1024);
    await f.read(r, 2 * 1024 * 1024);
    expect(r.subarray(0, 512 * 1024 + 4096).every((v) => v === 0)).toBe(true);
    expect(r.subarray(512 * 1024 + 4096).every((v) => v === 0x42)).toBe(true);
    expect(readFileSync(path).length).toBe(8 * 1024 * 1024);
  });
});

describe('nbdserve CLI', () => {
  it('one line on stderr and exit 1 for bad usage and bad backends', () => {
    ensureBuilt();
    for (const args of [['--bogus', 'memory', '1M'], ['memory'], [], ['memory', '1Q'], ['--error-rate', 'x', 'memory', '1M']]) {
      const r = spawnSync(process.execPath, [NBDSERVE, ...args], { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^nbdserve: /);
    }
  });

  it('-s serves one client on stdin/stdout (socketpair, as nbd_connect_command does)', async () => {
    ensureBuilt();
    const c = await connect({ command: [process.execPath, NBDSERVE, '-s', 'memory', '1M'] });
    await c.pwrite(Buffer.from('stdio'), 10);
    const b = Buffer.alloc(5);
    await c.pread(b, 10);
    expect(b.toString()).toBe('stdio');
    await c.close();
  });

  it('-s also works when stdin and stdout are two different pipes', async () => {
    ensureBuilt();
    const child = spawn(process.execPath, [NBDSERVE, '-s', 'memory', '1M'], { stdio: ['pipe', 'pipe', 'ignore'] });
    cleanups.push(() => { child.kill('SIGKILL'); });
    // 'close', not 'exit': the ACK can still be in the stdout pipe when 'exit' fires.
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    let got = Buffer.alloc(0);
    child.stdout!.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length === 18) {
        // Client flags (fixed newstyle, no zeroes), then NBD_OPT_ABORT.
        const b = Buffer.alloc(20);
        b.writeUInt32BE(3, 0);
        b.writeBigUInt64BE(0x49484156454f5054n, 4);
        b.writeUInt32BE(2, 12);
        child.stdin!.write(b);
      }
    });
    expect(await exited).toBe(0);
    expect(got.subarray(0, 8).toString()).toBe('NBDMAGIC');
    // The ACK to NBD_OPT_ABORT: reply magic, option 2, type ACK (1), length 0.
    expect(got.subarray(18).toString('hex')).toBe('0003e889045565a9' + '00000002' + '00000001' + '00000000');
  });

  it('socket activation (LISTEN_FDS) started by our client', async () => {
    ensureBuilt();
    const c = await connect({ activation: [process.execPath, NBDSERVE, 'pattern', '1M'] });
    const b = Buffer.alloc(16);
    await c.pread(b, 800);
    expect(b.readBigUInt64BE(0)).toBe(800n);
    await c.close();
  });

  it('-P writes a pid file, SIGTERM cleans up; --exit-with-parent exits when the parent dies', async () => {
    ensureBuilt();
    const dir = tempDir();
    const sock = join(dir, 's');
    const pidFile = join(dir, 'pid');
    const child = spawn(process.execPath, [NBDSERVE, '-U', sock, '-P', pidFile, 'memory', '1M'], { stdio: 'ignore' });
    cleanups.push(() => { child.kill('SIGKILL'); });
    await until('the pid file', () => pidIn(pidFile) > 0);
    expect(pidIn(pidFile)).toBe(child.pid);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(sock)).toBe(false);

    // A shell parent that starts nbdserve in the background and exits at once.
    const pid2 = join(dir, 'pid2');
    const shell = spawn('/bin/sh', ['-c', `"${process.execPath}" "${NBDSERVE}" --exit-with-parent -U "${join(dir, 's2')}" -P "${pid2}" memory 1M & while [ ! -s "${pid2}" ]; do sleep 0.05; done`], { stdio: 'ignore' });
    cleanups.push(() => { shell.kill('SIGKILL'); });
    const shellExit = new Promise((r) => shell.once('exit', r));
    // The shell exits only once the pid file has content.
    await shellExit;
    const orphan = pidIn(pid2);
    expect(orphan).toBeGreaterThan(1);
    let alive = true;
    for (let i = 0; i < 120 && alive; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try { process.kill(orphan, 0); } catch { alive = false; }
    }
    if (alive) process.kill(orphan, 'SIGKILL');
    expect(alive).toBe(false);
  });

  it('--error-rate and --disconnect-after on the command line', async () => {
    ensureBuilt();
    const dir = tempDir();
    const sock = join(dir, 's');
    const child = spawn(process.execPath, [NBDSERVE, '-U', sock, '--error-rate', 'write=1:ENOSPC', '--disconnect-after', '3', 'memory', '1M'], { stdio: 'ignore' });
    cleanups.push(() => { child.kill('SIGKILL'); });
    // The socket file exists a moment before the server listens: wait for a connect to work.
    await until('nbdserve to listen', () => canConnectUnix(sock));
    const c = await connect({ unixSocket: sock });
    await expect(c.pwrite(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'ENOSPC' });
    await c.pread(Buffer.alloc(512), 0);
    await c.flush();
    await expect(c.pread(Buffer.alloc(512), 0)).rejects.toBeTruthy();
    await c.close().catch(() => {});
  });
});
