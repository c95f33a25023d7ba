// connect() with retries: nbdkit (file plugin) killed and started again on the same socket at
// random moments while many reads or writes are in flight, a proxy that cuts the connection
// every MiB, and a TLS server killed mid-read: every command still succeeds once and the
// bytes are the file's. Without retries, or with too few, the loss is an error as before.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, MultiConn, NbdError, type ReconnectingClient, type RetryEvent } from '../src/index.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import {
  crashRepeatedly, RestartableServer, startCuttingProxy, startHangUpProxy, type CuttingProxy, type HangUpProxy,
} from './helpers/restartable-server.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';
import { rng } from './helpers/random.js';

const have = requireBinaries('nbdkit', 'psktool');
const MiB = 1 << 20;

const servers: RestartableServer[] = [];
const proxies: Array<CuttingProxy | HangUpProxy> = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function setUp(size: number, extra: string[] = [], delay = true): { dir: string; file: string; data: Buffer; server: RestartableServer } {
  const dir = makeTempDir('nbd-reconnect-');
  dirs.push(dir);
  const file = join(dir, 'disk.img');
  const data = crypto.randomBytes(size);
  fs.writeFileSync(file, data);
  // Each read waits a little, so the copy lasts long enough to be interrupted several times.
  // nbdkit 1.32 aborts (assertion in raw_send_socket) when a client goes away with replies
  // still to send, so the proxy, which does that on purpose, fronts our own server instead.
  const server = delay
    ? new RestartableServer(join(dir, 'nbdkit.sock'), [...extra, '--filter=delay', 'file', file, 'delay-read=4ms', 'delay-write=4ms'])
    : new RestartableServer(join(dir, 'nbdserve.sock'), ['file', file], 'nbdserve');
  servers.push(server);
  return { dir, file, data, server };
}

/** Reads the whole export in `chunk`-byte reads, `depth` at a time. */
async function readAll(c: Pick<ReconnectingClient, 'pread'>, size: number, chunk: number, depth: number): Promise<Buffer> {
  const out = Buffer.alloc(size);
  let next = 0;
  const worker = async () => {
    while (next < size) {
      const at = next;
      next += chunk;
      await c.pread(out.subarray(at, Math.min(size, at + chunk)), at);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
  return out;
}

describe.skipIf(!have)('connect() with retries', () => {
  for (const seed of [1, 2, 3]) {
    it(`reads survive nbdkit killed and restarted 3 times at random moments (seed ${seed})`, async () => {
      const size = 8 * MiB;
      const { data, server } = setUp(size);
      await server.start();
      const events: RetryEvent[] = [];
      // Eight attempts from 20 ms on wait up to 5 s in all: nbdkit takes up to half a second to
      // start again on a loaded machine.
      const c = await connect(server.uri, { retries: 8, retryDelayMs: 20, onRetry: (e) => events.push(e) });
      const crashes = crashRepeatedly(server, 3, 120, 30, rng(seed));
      const out = await readAll(c, size, 64 * 1024, 8);
      await crashes;
      // The last crash may come after the reads: one more read proves the link is back.
      await c.pread(Buffer.alloc(4096), 0);
      expect(out.equals(data)).toBe(true);
      expect(c.reconnections).toBeGreaterThanOrEqual(1);
      expect(events.length).toBeGreaterThanOrEqual(c.reconnections);
      await c.close();
    });
  }

  it('writes survive it too: the file holds exactly what was written', async () => {
    const size = 8 * MiB;
    const { file, server } = setUp(size);
    fs.writeFileSync(file, Buffer.alloc(size));
    await server.start();
    const c = await connect(server.uri, { retries: 8, retryDelayMs: 20 });
    const want = crypto.randomBytes(size);
    const crashes = crashRepeatedly(server, 3, 120, 30, rng(7));
    let next = 0;
    const chunk = 64 * 1024;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < size) {
        const at = next;
        next += chunk;
        // Every other chunk of zeroes goes as WRITE_ZEROES.
        if (at % (4 * chunk) === 0) {
          want.fill(0, at, at + chunk);
          await c.zero(chunk, at);
        } else {
          await c.pwrite(want.subarray(at, at + chunk), at);
        }
      }
    }));
    await crashes;
    await c.flush();
    await c.close();
    expect(fs.readFileSync(file).equals(want)).toBe(true);
    expect(c.reconnections).toBeGreaterThanOrEqual(1);
  });

  it('a proxy in front of nbdserve cuts the connection after every MiB: every read is right', async () => {
    const size = 8 * MiB;
    const { dir, data, server } = setUp(size, [], false);
    await server.start();
    const proxySocket = join(dir, 'proxy.sock');
    const proxy = await startCuttingProxy(server.socket, proxySocket, MiB, 20);
    proxies.push(proxy);
    const c = await connect(`nbd+unix:///?socket=${proxySocket}`, { retries: 2, retryDelayMs: 5 });
    const out = await readAll(c, size, 128 * 1024, 4);
    expect(out.equals(data)).toBe(true);
    expect(proxy.cuts).toBeGreaterThanOrEqual(5);
    expect(c.reconnections).toBe(proxy.cuts);
    await c.close();
  });

  it('a TLS server (PSK) killed and restarted mid-read', async () => {
    const size = 4 * MiB;
    const dir = makeTempDir('nbd-reconnect-tls-');
    dirs.push(dir);
    const psk = join(dir, 'keys.psk');
    makePskFile(psk, 'alice');
    const { data, server } = setUp(size, ['--tls=require', `--tls-psk=${psk}`]);
    await server.start();
    const uri = `nbds+unix://alice@/?socket=${server.socket}&tls-psk-file=${psk}`;
    const c = await connect(uri, { retries: 8, retryDelayMs: 20, uriAllowLocalFile: true });
    expect(c.connection.tls).toBe(true);
    const crashes = crashRepeatedly(server, 2, 100, 30, rng(5));
    const out = await readAll(c, size, 64 * 1024, 8);
    await crashes;
    await c.pread(Buffer.alloc(4096), 0);
    expect(out.equals(data)).toBe(true);
    expect(c.reconnections).toBeGreaterThanOrEqual(1);
    expect(c.connection.tls).toBe(true);
    await c.close();
  });

  it('too few retries for a server that stays down: one error naming the attempts, soon', async () => {
    const { server } = setUp(MiB);
    await server.start();
    const c = await connect(server.uri, { retries: 2, retryDelayMs: 10 });
    await server.kill();
    const started = Date.now();
    const err = await c.pread(Buffer.alloc(4096), 0).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).message).toMatch(/gave up after 2 reconnection attempts; last: .*(ENOENT|ECONNREFUSED|no such file|refused)/i);
    expect(Date.now() - started).toBeLessThan(5000);
    // Later commands fail the same way at once.
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toThrow(/gave up after 2/);
    await c.close();
  });

  it('retries: 0 and no retries option: a lost connection fails the command as before', async () => {
    const { server } = setUp(MiB);
    await server.start();
    const plain = await connect(server.uri);
    const zero = await connect(server.uri, { retries: 0 });
    await server.restart();
    await expect(plain.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'ECONNRESET' });
    await expect(zero.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(zero.reconnections).toBe(0);
    await plain.close();
    await zero.close();
  });

  it('a reopened export of another size is not the same disk: refused', async () => {
    const { dir, server } = setUp(MiB);
    await server.start();
    const c = await connect(server.uri, { retries: 3, retryDelayMs: 10 });
    await server.kill();
    fs.writeFileSync(join(dir, 'disk.img'), Buffer.alloc(2 * MiB));
    await server.start();
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toThrow(/export is not the same \(size 1048576 -> 2097152/);
    await c.close();
  });

  it('the first connection waits for a server that starts late', async () => {
    const size = MiB;
    const { data, server } = setUp(size);
    const events: RetryEvent[] = [];
    const connecting = connect(server.uri, { retries: 8, retryDelayMs: 50, onRetry: (e) => events.push(e) });
    await new Promise((r) => setTimeout(r, 300));
    await server.start();
    const c = await connecting;
    const out = await readAll(c, size, 64 * 1024, 4);
    expect(out.equals(data)).toBe(true);
    // Refused or missing socket while it was down: attempts in the open phase, none since.
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.every((e) => e.phase === 'open')).toBe(true);
    expect(events[0]!.error.message).toMatch(/no such file|refused/i);
    expect(c.reconnections).toBe(0);
    await c.close();
  });

  it('a server that hangs up during the handshake: tried again; too few retries name the attempts', async () => {
    const { dir, data, server } = setUp(MiB, [], false);
    await server.start();
    const door = join(dir, 'door.sock');
    const proxy = await startHangUpProxy(server.socket, door, 2);
    proxies.push(proxy);
    const uri = `nbd+unix:///?socket=${door}`;
    // Without retries the hang-up is the error, at once.
    await expect(connect(uri)).rejects.toMatchObject({ code: 'ECONNRESET' });
    // One hang-up left: one retry is enough.
    const c = await connect(uri, { retries: 1, retryDelayMs: 10 });
    const out = Buffer.alloc(MiB);
    await c.pread(out, 0);
    expect(out.equals(data)).toBe(true);
    expect(proxy.hungUp).toBe(2);
    await c.close();
  });

  it('a server that never comes: the last error names the attempts; an unknown export is not retried', async () => {
    const { dir, server } = setUp(MiB);
    const started = Date.now();
    const err = await connect(server.uri, { retries: 3, retryDelayMs: 10 }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).message).toMatch(/no such file.*\(gave up after 3 connection attempts\)$/i);
    expect(Date.now() - started).toBeLessThan(5000);
    const strict = new RestartableServer(join(dir, 'strict.sock'), ['--filter=exportname', 'memory', '1M', 'exportname=a', 'exportname-strict=true']);
    servers.push(strict);
    await strict.start();
    const events: RetryEvent[] = [];
    await expect(connect(`nbd+unix:///b?socket=${strict.socket}`, { retries: 3, retryDelayMs: 10, onRetry: (e) => events.push(e) }))
      .rejects.toBeInstanceOf(NbdError);
    expect(events).toEqual([]);
  });

  it('MultiConn with retries: four connections, each reopened on its own while nbdkit restarts', async () => {
    const size = 8 * MiB;
    const { data, server } = setUp(size);
    const connecting = MultiConn.open(server.uri, { connections: 4, retries: 8, retryDelayMs: 20 });
    await new Promise((r) => setTimeout(r, 100));
    await server.start();
    const m = await connecting;
    expect(m.connections).toBe(4);
    const crashes = crashRepeatedly(server, 2, 120, 30, rng(11));
    const out = await readAll(m, size, 64 * 1024, 8);
    await crashes;
    for (let i = 0; i < 4; i++) await m.pread(Buffer.alloc(4096), 0, undefined, i);
    expect(out.equals(data)).toBe(true);
    // Every connection saw at least the first crash and came back by itself.
    for (const c of m.clients) expect(c.reconnections).toBeGreaterThanOrEqual(1);
    await m.close();
  });

  it('bad options are refused at once', async () => {
    await expect(connect('nbd+unix:///?socket=/nonexistent', { retries: -1 })).rejects.toThrow('retries must be a whole number of at least 0');
    await expect(connect('nbd+unix:///?socket=/nonexistent', { retries: 1.5 })).rejects.toThrow('retries must be');
    await expect(connect({ command: ['nbdkit', '-s', 'memory', '1M'] }, { retries: 1 })).rejects.toThrow('retries need a target that can be connected to again');
    await expect(connect('nbd+unix:///?socket=/nonexistent', { retries: 1, optMode: true })).rejects.toThrow('cannot be combined with optMode');
    await expect(MultiConn.open({ command: ['nbdkit', '-s', 'memory', '1M'] }, { retries: 1 })).rejects.toThrow('retries need a target');
  });
});
