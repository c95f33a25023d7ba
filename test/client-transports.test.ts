// Subprocess transports (command on stdin/stdout, systemd socket activation), fds, TCP, and
// proof that children are reaped when the handle closes.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { connect, MultiConn, type NbdClient } from '../src/client/index.js';
import { freePort, processReaped } from './helpers/servers.js';
import { requireBinary } from './helpers/binaries.js';
import { teardownAfterEach } from './helpers/teardown.js';

const haveNbdkit = requireBinary('nbdkit');
const haveQemu = requireBinary('qemu-nbd');
const { clients } = teardownAfterEach();

/** Children of this process whose command line mentions `word`. */
function childPids(word: string): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(word)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

async function roundTrip(c: NbdClient): Promise<void> {
  const w = Buffer.alloc(65536);
  for (let i = 0; i < w.length; i++) w[i] = i % 251;
  await c.pwrite(w, 4096);
  const r = Buffer.alloc(65536);
  await c.pread(r, 4096);
  expect(r.equals(w)).toBe(true);
}

describe.skipIf(!haveNbdkit)('nbdkit subprocesses', () => {
  it('command: nbdkit -s memory 1M over a socketpair, reaped after close', async () => {
    const c = await connect({ command: ['nbdkit', '-s', '--exit-with-parent', 'memory', '1M'] });
    clients.push(c);
    expect(c.export.size).toBe(1 << 20);
    expect(c.connection.uri).toBeUndefined();
    const pids = childPids('nbdkit');
    expect(pids.length).toBe(1);
    await roundTrip(c);
    await c.close();
    expect(processReaped(pids[0]!)).toBe(true);
  });

  it('socket activation: nbdkit memory 1M, reaped after close', async () => {
    const c = await connect({ activation: ['nbdkit', 'memory', '1M'] });
    clients.push(c);
    expect(c.export.size).toBe(1 << 20);
    const pids = childPids('nbdkit');
    expect(pids.length).toBe(1);
    await roundTrip(c);
    await c.close();
    expect(processReaped(pids[0]!)).toBe(true);
  });

  it('socket activation with multi-conn: several connections to one server', async () => {
    const m = await MultiConn.open({ activation: ['nbdkit', 'memory', '4M'] }, { connections: 3 });
    clients.push(m);
    expect(m.export.canMultiConn).toBe(true);
    expect(m.connections).toBe(3);
    const w = Buffer.alloc(4096, 0x5a);
    await m.pwrite(w, 0, undefined, 1);
    await m.flush();
    const r = Buffer.alloc(4096);
    await m.pread(r, 0, undefined, 2);
    expect(r.equals(w)).toBe(true);
    const pids = childPids('nbdkit');
    await m.close();
    expect(pids.every(processReaped)).toBe(true);
  });

  it('a command that is not an NBD server fails cleanly', async () => {
    await expect(connect({ command: ['true'] })).rejects.toMatchObject({ code: 'ECONNRESET' });
    await expect(connect({ command: ['/nonexistent/binary'] })).rejects.toMatchObject({ name: 'NbdError' });
    expect(childPids('true').length).toBe(0);
  });

  it('TCP host/port and nbd:// URI', async () => {
    const port = await freePort();
    const { spawn } = await import('node:child_process');
    const srv = spawn('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'memory', '1M'], { stdio: 'ignore' });
    try {
      let c: NbdClient | undefined;
      for (let i = 0; i < 100 && !c; i++) {
        c = await connect(`nbd://127.0.0.1:${port}/`).catch(async () => {
          await new Promise((r) => setTimeout(r, 50));
          return undefined;
        });
      }
      clients.push(c!);
      expect(c!.connection.uri).toBe(`nbd://127.0.0.1:${port}/`);
      await roundTrip(c!);
      await c!.close();
      const d = await connect({ host: '127.0.0.1', port });
      clients.push(d);
      await roundTrip(d);
    } finally {
      srv.kill();
    }
  });

  it('connection refused is ECONNREFUSED / ENOENT', async () => {
    const port = await freePort();
    await expect(connect(`nbd://127.0.0.1:${port}/`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(connect('nbd+unix:///?socket=/nonexistent/sock')).rejects.toMatchObject({ code: 'ENOENT' });
    // No vsock transport to CID 3 here (see sys-vsock.test.ts): the kernel's ENODEV, in words.
    await expect(connect('nbd+vsock://3/')).rejects.toThrow(/vsock CID 3 port 10809: No such device/);
  });
});

describe.skipIf(!haveQemu)('qemu-nbd socket activation', () => {
  it('qemu-nbd accepts LISTEN_FDS', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'qemu-act-'));
    try {
      const img = join(dir, 'disk.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '2M']);
      const c = await connect({ activation: ['qemu-nbd', '-f', 'qcow2', img] });
      clients.push(c);
      expect(c.export.size).toBe(2 << 20);
      await roundTrip(c);
      const pids = childPids('qemu-nbd');
      await c.close();
      expect(pids.every(processReaped)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
