// Durable writes: the file backend answers FLUSH and FUA requests only after fdatasync returned,
// a failing sync is an error reply (never a success, and never again a success afterwards),
// strace shows the sync before the reply on the wire, and nbdcopy --flush exits 0 only once
// the destination acknowledged FLUSH and 1 with one line when it failed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { CMD_FLUSH, CMD_WRITE, SIMPLE_REPLY_MAGIC } from '../src/protocol/index.js';
import { FileBackend } from '../src/server/index.js';
import { requireBinaries, requireBinary } from './helpers/binaries.js';
import { NBDSERVE, OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { RawNbd, embeddedStarter, spawnNbdserve } from './helpers/embedded.js';
import { hasExactlyOneErrorLine, runAsync } from './helpers/run-tool.js';
import { canConnectUnix } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

function tempFile(size: number): string {
  const d = mkdtempSync(join(tmpdir(), 'durability-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  const f = join(d, 'disk.img');
  writeFileSync(f, Buffer.alloc(size));
  return f;
}

const eio = (): Error => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5 });

describe('file backend durability', () => {
  it('FLUSH and FUA writes, zeroes and trims get an error reply when fdatasync fails, and stay failed', async () => {
    let fail = false;
    let syncs = 0;
    const backend = await FileBackend.open(tempFile(1 << 20), false, {
      datasync: async (real) => { syncs++; if (fail) throw eio(); await real(); },
    });
    cleanups.push(() => backend.close());
    const s = await serve({ backend });
    const c = await connect(s.uri);
    cleanups.push(() => c.close());
    await c.pwrite(Buffer.alloc(4096, 1), 0);
    await c.flush();
    await c.pwrite(Buffer.alloc(4096, 2), 4096, { fua: true });
    expect(syncs).toBe(2);

    fail = true;
    await expect(c.flush()).rejects.toMatchObject({ code: 'EIO' });
    fail = false; // the disk "recovered", but what it dropped is gone: no success from now on
    await expect(c.pwrite(Buffer.alloc(4096, 3), 8192, { fua: true })).rejects.toMatchObject({ code: 'EIO' });
    await expect(c.zero(4096, 0, { fua: true })).rejects.toMatchObject({ code: 'EIO' });
    await expect(c.trim(4096, 0, { fua: true })).rejects.toMatchObject({ code: 'EIO' });
    await expect(c.flush()).rejects.toMatchObject({ code: 'EIO' });
    // Plain writes (no durability asked) still succeed: only the sync promise is broken.
    await c.pwrite(Buffer.alloc(4096, 4), 12288);
  });

  it('the reply to FLUSH waits for a slow fdatasync to return', async () => {
    const events: string[] = [];
    const backend = await FileBackend.open(tempFile(1 << 20), false, {
      datasync: async (real) => {
        events.push('sync started');
        await new Promise((r) => setTimeout(r, 300));
        await real();
        events.push('sync returned');
      },
    });
    cleanups.push(() => backend.close());
    const s = await serve({ backend });
    const c = await connect(s.uri);
    cleanups.push(() => c.close());
    await c.pwrite(Buffer.alloc(65536, 7), 0);
    await c.flush();
    events.push('client got the reply');
    await c.pwrite(Buffer.alloc(512, 8), 0, { fua: true });
    events.push('client got the FUA reply');
    expect(events).toEqual(['sync started', 'sync returned', 'client got the reply', 'sync started', 'sync returned', 'client got the FUA reply']);
  });

  it.skipIf(!requireBinary('strace'))('strace of bin/nbdserve: fdatasync returns before the FLUSH reply is written', async () => {
    ensureBuilt();
    const file = tempFile(1 << 20);
    const dir = mkdtempSync(join(tmpdir(), 'durability-trace-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sock = join(dir, 'sock');
    const trace = join(dir, 'trace');
    const child = spawn('strace', ['-f', '-ttt', '-xx', '-s', '64', '-e', 'trace=fdatasync,write,writev,sendmsg,sendto', '-o', trace,
      process.execPath, NBDSERVE, '-U', sock, '--no-sr', 'file', file], { stdio: 'ignore' });
    cleanups.push(() => { child.kill('SIGKILL'); });
    const deadline = Date.now() + 20_000;
    while (!(await canConnectUnix(sock))) {
      if (Date.now() > deadline) throw new Error('nbdserve under strace did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await RawNbd.connect(sock);
    cleanups.push(() => r.destroy());
    await r.negotiate({});
    r.sendRequest(CMD_WRITE, 0, 0x11111111, 0, 4096, Buffer.alloc(4096, 9));
    const w = await r.read(16);
    expect(w.readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);
    expect(w.readUInt32BE(4)).toBe(0);
    r.sendRequest(CMD_FLUSH, 0, 0x5a5a5a5a, 0, 0);
    const f = await r.read(16);
    expect(f.readUInt32BE(4)).toBe(0);
    expect(f.readUInt32BE(12)).toBe(0x5a5a5a5a);
    r.destroy();
    // strace outlives a SIGTERM while its tracee runs: end the traced nbdserve instead.
    const exited = new Promise((res) => child.once('exit', res));
    const tracee = spawnSync('pgrep', ['-P', String(child.pid)]).stdout.toString().trim().split('\n').filter(Boolean).map(Number);
    for (const pid of tracee) process.kill(pid, 'SIGTERM');
    await exited;
    const lines = readFileSync(trace, 'utf8').split('\n');
    // The reply: a simple reply (magic 67446698) with our cookie, error 0.
    const replyAt = lines.findIndex((l) => /\\x67\\x44\\x66\\x98\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x5a\\x5a\\x5a\\x5a/.test(l));
    expect(replyAt).toBeGreaterThan(0);
    // fdatasync's end: one whole line, or its "resumed" line when another thread interleaved.
    const syncEnd = lines.findIndex((l) => /fdatasync\(.*\)\s+= 0$|<\.\.\. fdatasync resumed>.*= 0$/.test(l));
    expect(syncEnd).toBeGreaterThanOrEqual(0);
    expect(syncEnd).toBeLessThan(replyAt);
    const time = (l: string) => Number(l.split(/\s+/)[1]);
    expect(time(lines[syncEnd]!)).toBeLessThanOrEqual(time(lines[replyAt]!));
  }, 60_000);
});

const haveNbdkit = requireBinaries('nbdkit');

// nbdkit 1.32's error and delay filters have no flush knobs: our server's fault injection stands in.
describe.skipIf(!haveNbdkit)('nbdcopy --flush', () => {
  ensureBuilt();
  it('exits 0 only after the destination acknowledged FLUSH (a destination that answers FLUSH 1.5 s late)', async () => {
    const dst = await spawnNbdserve(['--delay', 'flush=1500', 'memory', '4M']);
    cleanups.push(() => dst.stop());
    const started = Date.now();
    const r = await runAsync(OUR_NBDCOPY, ['--flush', '--', '[', 'nbdkit', 'pattern', '4M', ']', dst.uri]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it("a destination whose FLUSH fails: exit 1 with one line (nbdserve's fault injection)", async () => {
    const dst = await spawnNbdserve(['--error-rate', 'flush=1:EIO', 'memory', '4M']);
    cleanups.push(() => dst.stop());
    const r = await runAsync(OUR_NBDCOPY, ['--flush', '--', '[', 'nbdkit', 'pattern', '4M', ']', dst.uri]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^nbdcopy: .*flush.*\n$/i);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
    // Without --flush the same copy succeeds: the failure is the flush's.
    const ok = await runAsync(OUR_NBDCOPY, ['--', '[', 'nbdkit', 'pattern', '4M', ']', dst.uri]);
    expect(ok.status).toBe(0);
  });
});

