// Issue 18 items 2-4 and 7-9 against real servers: per-connection loggers and names, closing a
// stuck connection (abandon pending, close timeout), state/error and connection.uri reopening
// the same export, relaxed strict mode reaching the server's error, handshake flags and
// request block size, and service-name ports.
import net from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NbdError, connect, lookupService, resolvePort } from '../src/index.js';
import { strictChecks } from '../src/client/strict-mode.js';
import { requireBinary } from './helpers/binaries.js';
import { startFakeServer } from './helpers/fake-server.js';
import { startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makePskFile } from './helpers/tls-fixtures.js';

const haveNbdkit = requireBinary('nbdkit');
const haveQemu = requireBinary('qemu-nbd');
const { servers, clients, push, tempDir } = teardownAfterEach<RunningServer | { stop(): Promise<void> }>();

async function nbdkit(args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

describe('units', () => {
  it('strictChecks: default all, false none, an object relaxes only what it names', () => {
    expect(Object.values(strictChecks(undefined)).every(Boolean)).toBe(true);
    expect(Object.values(strictChecks(false)).some(Boolean)).toBe(false);
    expect(strictChecks({ bounds: false })).toMatchObject({ bounds: false, commands: true, align: true });
  });

  it('service names resolve through a services file; numbers and digits pass; bad values name themselves', () => {
    const dir = tempDir();
    const file = join(dir, 'services');
    writeFileSync(file, '# comment\nnbd\t\t10809/tcp\t\t\t# Linux NBD\nfoo\t\t4242/udp\nbar\t\t4243/tcp\tbaz qux\n');
    expect(lookupService('nbd', file)).toBe(10809);
    expect(lookupService('foo', file)).toBeUndefined(); // udp only
    expect(lookupService('qux', file)).toBe(4243); // alias
    expect(lookupService('nbd', join(dir, 'missing'))).toBeUndefined();
    expect(resolvePort(undefined)).toBe(10809);
    expect(resolvePort(7, file)).toBe(7);
    expect(resolvePort('8080', file)).toBe(8080);
    expect(resolvePort('baz', file)).toBe(4243);
    expect(() => resolvePort('nosuch', file)).toThrow("connect: unknown service name 'nosuch'");
    expect(() => resolvePort('70000', file)).toThrow("connect: invalid port '70000'");
    expect(() => resolvePort(0)).toThrow(NbdError);
  });
});

describe.skipIf(!haveNbdkit)('per-connection options against nbdkit', () => {
  it('logger and name: each connection logs to its own callback under its own name', async () => {
    const s = await nbdkit(['memory', '1M']);
    const lines: string[] = [];
    const a = await connect(s.uri, { name: 'first', logger: (name, msg) => lines.push(`${name}|${msg}`) });
    clients.push(a);
    const b = await connect(s.uri);
    clients.push(b);
    expect(a.name).toBe('first');
    expect(b.name).toMatch(/^nbd\d+$/);
    await a.pread(Buffer.alloc(512), 4096);
    await b.pread(Buffer.alloc(512), 0);
    expect(lines.every((l) => l.startsWith('first|'))).toBe(true);
    expect(lines.some((l) => l.includes('sending NBD_OPT_GO'))).toBe(true);
    expect(lines.some((l) => l.includes('request: pread cookie 1 offset 4096 length 512'))).toBe(true);
    // b's read went to no callback of a's.
    expect(lines.some((l) => l.includes('offset 0 length 512'))).toBe(false);
  });

  it('relaxed bounds: the out-of-bounds read reaches nbdkit and its error comes back; strict refuses it here', async () => {
    const s = await nbdkit(['memory', '1M']);
    const strict = await connect(s.uri);
    clients.push(strict);
    const sentBefore = strict.stats.chunksSent;
    const strictErr = (await strict.pread(Buffer.alloc(512), 1 << 20).catch((e: unknown) => e)) as NbdError;
    expect(strictErr).toBeInstanceOf(NbdError);
    expect(strictErr.message).toContain('beyond the end of the export');
    expect(strict.stats.chunksSent).toBe(sentBefore); // refused here: nothing was sent

    const lines: string[] = [];
    const relaxed = await connect(s.uri, { strict: { bounds: false, zeroSize: false }, logger: (_n, m) => lines.push(m) });
    clients.push(relaxed);
    const before = relaxed.stats.chunksSent;
    const err = (await relaxed.pread(Buffer.alloc(512), 1 << 20).catch((e: unknown) => e)) as NbdError;
    expect(err).toBeInstanceOf(NbdError);
    expect(err.message).toMatch(/server replied E/);
    expect(relaxed.stats.chunksSent).toBe(before + 1);
    // The connection survives the server's error.
    await relaxed.pread(Buffer.alloc(512), 0);
    expect(relaxed.state).toBe('ready');
  });

  it('handshake flags: without fixed newstyle the client speaks plain newstyle (EXPORT_NAME, no structured replies)', async () => {
    const s = await nbdkit(['memory', '1M']);
    const c = await connect(s.uri, { handshakeFlags: { fixedNewstyle: false } });
    clients.push(c);
    const handshakeBytes = c.stats.bytesReceived;
    expect(c.connection.protocol).toBe('newstyle');
    expect(c.connection.structuredReplies).toBe(false);
    const buf = Buffer.alloc(4096, 1);
    await c.pwrite(buf, 0);
    const back = Buffer.alloc(4096);
    await c.pread(back, 0);
    expect(back.equals(buf)).toBe(true);
    const z = await connect(s.uri, { handshakeFlags: { noZeroes: false, fixedNewstyle: false } });
    clients.push(z);
    // Without NO_ZEROES the EXPORT_NAME reply carries 124 zero bytes more.
    expect(z.stats.bytesReceived - handshakeBytes).toBe(124);
  });

  it('requestBlockSize: false does not ask for the block sizes nbdkit would send', async () => {
    const s = await nbdkit(['--filter=blocksize-policy', 'memory', '1M', 'blocksize-minimum=4096', 'blocksize-preferred=65536', 'blocksize-maximum=1M']);
    const asked = await connect(s.uri);
    clients.push(asked);
    expect(asked.export).toMatchObject({ blockSizeFromServer: true, blockSizeMinimum: 4096 });
    const not = await connect(s.uri, { requestBlockSize: false });
    clients.push(not);
    expect(not.export.blockSizeFromServer).toBe(false);
    expect(not.export.blockSizeMinimum).toBe(1);
  });

  it('connection.uri reconnects to the same export: plain, named export, TLS-PSK (settings in the URI)', async () => {
    const s = await nbdkit(['memory', '1M']);
    const a = await connect(s.uri);
    clients.push(a);
    await a.pwrite(Buffer.alloc(512, 0x5a), 0);
    const again = await connect(a.connection.uri!);
    clients.push(again);
    const back = Buffer.alloc(512);
    await again.pread(back, 0);
    expect(back.every((x) => x === 0x5a)).toBe(true);

    const dir = tempDir();
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const t = await nbdkit(['--tls=require', `--tls-psk=${psk.path}`, 'memory', '1M']);
    const tc = await connect(`nbds+unix:///?socket=${t.socket}&tls-psk-file=${psk.path}&tls-username=alice`, { uriAllowLocalFile: true });
    clients.push(tc);
    expect(tc.connection.tls).toBe(true);
    const uri = tc.connection.uri!;
    expect(uri).toMatch(/^nbds\+unix:/);
    expect(uri).toContain('tls-psk-file=');
    expect(uri).toContain('tls-username=alice');
    // It names the PSK file: reopening it takes the same allowance (as libnbd's nbd_get_uri).
    await expect(connect(uri)).rejects.toMatchObject({ code: 'EPERM' });
    const t2 = await connect(uri, { uriAllowLocalFile: true });
    clients.push(t2);
    expect(t2.connection.tls).toBe(true);
  });

  it('socket activation: connection.uri reaches the activated server while the first connection lives', async () => {
    const a = await connect({ activation: ['nbdkit', 'memory', '1M'] });
    clients.push(a);
    await a.pwrite(Buffer.alloc(512, 0x33), 512);
    const uri = a.connection.uri!;
    expect(uri).toMatch(/^nbd\+unix:\/\/\/\?socket=/);
    const b = await connect(uri);
    await b.pread(Buffer.alloc(512), 512).then(() => undefined);
    const back = Buffer.alloc(512);
    await b.pread(back, 512);
    expect(back.every((x) => x === 0x33)).toBe(true);
    await b.close();
  });

  it('state and error: a killed server makes the connection dead with the reason, no command needed', async () => {
    const s = await nbdkit(['memory', '1M']);
    const c = await connect(s.uri);
    clients.push(c);
    expect(c.state).toBe('ready');
    expect(c.error).toBeUndefined();
    await s.stop();
    for (let i = 0; i < 100 && c.state === 'ready'; i++) await new Promise((r) => setTimeout(r, 10));
    expect(c.state).toBe('dead');
    expect(c.error).toBeInstanceOf(NbdError);
    expect(c.error!.code).toBe('ECONNRESET');
    const e = await c.pread(Buffer.alloc(512), 0).catch((x: unknown) => x);
    expect(e).toBe(c.error);
  });

  it('a numeric-string port and a service name that maps to it reach an nbdkit on TCP', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const dir = tempDir();
    const { execa } = await import('execa');
    const child = execa('nbdkit', ['-f', '-i', '127.0.0.1', '-p', String(port), 'memory', '1M'], { reject: false });
    push(async () => {
      child.kill('SIGTERM');
      await child;
    });
    let c;
    for (let i = 0; i < 200 && !c; i++) {
      c = await connect({ host: '127.0.0.1', port: String(port) }).catch(() => undefined);
      if (!c) await new Promise((r) => setTimeout(r, 25));
    }
    expect(c).toBeDefined();
    clients.push(c!);
    expect(c!.export.size).toBe(1 << 20);
    expect(c!.connection.uri).toBe(`nbd://127.0.0.1:${port}/`);
    writeFileSync(join(dir, 'services'), `testnbd\t${port}/tcp\n`);
    expect(resolvePort('testnbd', join(dir, 'services'))).toBe(port);
    // /etc/services here lists nbd as 10809 (where nothing listens): the name resolves and the
    // connection is refused, not rejected as a bad port.
    const refused = await connect({ host: '127.0.0.1', port: 'nbd' }).catch((e: NbdError) => e);
    expect(refused).toBeInstanceOf(NbdError);
    expect((refused as NbdError).message).not.toContain('unknown service');
    if (lookupService('nbd') === 10809) expect((refused as NbdError).code).not.toBe('EINVAL');
  });
});

describe('closing a stuck connection', () => {
  /** A server that completes the handshake, then reads requests and never answers. */
  async function stuckServer() {
    const s = await startFakeServer(async (peer) => {
      await peer.negotiate(1 << 20, { structured: true });
      for (;;) await peer.readRequest();
    });
    servers.push(s);
    return s;
  }

  it('close({ abandonPending }) fails commands in flight with ESHUTDOWN and resolves at once', async () => {
    const s = await stuckServer();
    const c = await connect(s.uri);
    clients.push(c);
    const reads = [0, 1, 2].map((i) => c.pread(Buffer.alloc(512), i * 512).catch((e: NbdError) => e));
    await new Promise((r) => setTimeout(r, 50));
    expect(c.inFlight).toBe(3);
    const t0 = Date.now();
    await c.close({ abandonPending: true });
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const e of await Promise.all(reads)) {
      expect(e).toBeInstanceOf(NbdError);
      expect((e as NbdError).code).toBe('ESHUTDOWN');
    }
    expect(c.state).toBe('closed');
    expect(c.error!.message).toContain('3 commands in flight abandoned');
  });

  it('close({ timeoutMs }) waits that long, then abandons; a plain close() is ended by a later abandoning one', async () => {
    const s = await stuckServer();
    const c = await connect(s.uri);
    clients.push(c);
    const read = c.pread(Buffer.alloc(512), 0).catch((e: NbdError) => e);
    const t0 = Date.now();
    await c.close({ timeoutMs: 300 });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3000);
    expect(((await read) as NbdError).code).toBe('ESHUTDOWN');

    const d = await connect(s.uri);
    clients.push(d);
    const r2 = d.pread(Buffer.alloc(512), 0).catch((e: NbdError) => e);
    let waited = false;
    const plain = d.close().then(() => (waited = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(waited).toBe(false); // still waiting for the reply that never comes
    await d.close({ abandonPending: true });
    await plain;
    expect(((await r2) as NbdError).code).toBe('ESHUTDOWN');
  });
});

describe.skipIf(!haveQemu)('qemu-nbd', () => {
  it('connection.uri of a named export reconnects to it; relaxed out-of-bounds read gets qemu-nbd\'s error', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'img'), Buffer.alloc(1 << 20, 0x11));
    const s = await startQemuNbd(['-f', 'raw', '-e', '4', '-x', 'disk one', join(dir, 'img')], { dir, exportName: 'disk one' });
    servers.push(s);
    const c = await connect(s.uri);
    clients.push(c);
    const again = await connect(c.connection.uri!);
    clients.push(again);
    expect(again.export.exportName).toBe('disk one');
    const relaxed = await connect(s.uri, { strict: false });
    clients.push(relaxed);
    const err = await relaxed.pread(Buffer.alloc(512), (1 << 20) + 512).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect(relaxed.state).toBe('ready');
  });
});
