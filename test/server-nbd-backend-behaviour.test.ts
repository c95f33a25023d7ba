// The nbd backend's behaviour beyond pass-through: every command and errno through it in each
// protocol style on both sides (library startServer), shared mode with 8 writers at once,
// retry= against a late server, the upstream dying mid-copy, and bad parameters.
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, type NbdClient } from '../src/client/index.js';
import { MemoryBackend } from '../src/server/index.js';
import { resolvePort } from '../src/server/backends/nbd/params.js';
import { embeddedStarter, spawnNbdserve } from './helpers/embedded.js';
import { runTool } from './helpers/run-tool.js';
import { canConnectUnix, freePort, startNbdkit } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';
import { makePskFile } from './helpers/tls-fixtures.js';

const have = requireBinaries('nbdkit', '/usr/bin/nbdinfo', '/usr/bin/nbdcopy');
const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

async function client(uri: string, opts: Parameters<typeof connect>[1] = {}): Promise<NbdClient> {
  const c = await connect(uri, opts);
  cleanups.push(() => c.close().catch(() => {}));
  return c;
}

async function rejection(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe('nbd backend through startServer: commands and protocol styles', () => {
  const styles = [
    { name: 'extended front over an oldstyle upstream', front: {}, upstream: { oldstyle: true } },
    { name: 'oldstyle front over an extended upstream', front: { oldstyle: true }, upstream: {} },
    { name: 'structured front over a simple-reply upstream', front: { extendedHeaders: false }, upstream: { structuredReplies: false } },
  ];
  for (const style of styles) {
    it(`every command, ${style.name}`, async () => {
      const size = 8 << 20;
      const mem = new MemoryBackend(size);
      const up = await serve({ backend: mem, ...style.upstream });
      const px = await serve({ backend: ['nbd', up.uri], ...style.front });
      const c = await client(px.uri);
      expect(c.export.size).toBe(size);
      expect(c.connection.protocol).toBe(style.front.oldstyle ? 'oldstyle' : 'newstyle-fixed');

      const data = randomBytes(1 << 20);
      await Promise.all([c.pwrite(data, 0, { fua: true }), c.pwrite(data, 4 << 20)]);
      await c.zero(64 << 10, 128 << 10, { noHole: true });
      await c.trim(64 << 10, 4 << 20);
      await c.flush();
      if (c.export.canCache) await c.cache(1 << 20, 0);
      const back = Buffer.alloc(2 << 20);
      await c.pread(back, 0);
      const want = Buffer.concat([data, Buffer.alloc(1 << 20)]);
      want.fill(0, 128 << 10, 192 << 10);
      expect(back.equals(want)).toBe(true);
      // The upstream's memory holds what went through the proxy.
      const direct = Buffer.alloc(64 << 10);
      mem.read(direct, (4 << 20) + (64 << 10));
      expect(direct.equals(data.subarray(64 << 10, 128 << 10))).toBe(true);
      const trimmed = Buffer.alloc(64 << 10, 1);
      mem.read(trimmed, 4 << 20);
      expect(trimmed.every((b) => b === 0)).toBe(true);

      if (c.connection.metaContexts.includes('base:allocation')) {
        const bs = (await c.blockStatus(size, 0)).get('base:allocation')!;
        expect(bs[0]!.flags & 1).toBe(0);
      }
      // Bounds are the front server's to check; errno from either side arrives as sent.
      expect(await rejection(c.pread(Buffer.alloc(512), size))).toBe('EINVAL');
    });
  }

  it('errors keep their errno; a FAST_ZERO the upstream refuses fails with its ENOTSUP', async () => {
    const up = await startNbdkit([
      '--filter=error', '--filter=nozero', 'memory', '4M', 'error=ENOSPC', 'error-pwrite-rate=1', 'zeromode=plugin', 'fastzeromode=slow',
    ]);
    cleanups.push(() => up.stop());
    const px = await serve({ backend: ['nbd', up.uri] });
    const c = await client(px.uri);
    expect(await rejection(c.pwrite(Buffer.alloc(4096, 1), 0))).toBe('ENOSPC');
    expect(c.export.canFastZero).toBe(true);
    expect(await rejection(c.zero(4096, 0, { fastZero: true }))).toBe('ENOTSUP');
    expect(await rejection(c.zero(4096, 0))).toBe(undefined);
    const read = Buffer.alloc(4096);
    await c.pread(read, 0);
    expect(read.every((b) => b === 0)).toBe(true);
  });

  it('multi-conn is offered only when it holds for what the client reaches', async () => {
    const up = await serve({ backend: new MemoryBackend(1 << 20) });
    const own = await serve({ backend: ['nbd', up.uri] });
    expect((await client(own.uri)).export.canMultiConn).toBe(true);
    const kit = await startNbdkit(['--filter=multi-conn', 'memory', '1M', 'multi-conn-mode=disable']);
    cleanups.push(() => kit.stop());
    const perClient = await serve({ backend: ['nbd', kit.uri] });
    expect((await client(perClient.uri)).export.canMultiConn).toBe(false);
    // Shared: every client is on the one upstream connection, so they see one another's writes.
    const shared = await serve({ backend: ['nbd', kit.uri, 'shared=true'] });
    expect((await client(shared.uri)).export.canMultiConn).toBe(true);
  });
});

describe('nbd backend: shared mode', () => {
  it('8 clients writing disjoint ranges at once over the one upstream connection: all data correct', async () => {
    const region = 2 << 20;
    const mem = new MemoryBackend(8 * region);
    const up = await serve({ backend: mem });
    const px = await serve({ backend: ['nbd', up.uri, 'shared=true'] });
    const clients = await Promise.all(Array.from({ length: 8 }, () => client(px.uri)));
    const blobs = clients.map(() => randomBytes(region));
    expect(up.connections).toBe(1);
    await Promise.all(clients.map(async (c, i) => {
      const writes = [];
      for (let o = 0; o < region; o += 64 << 10) writes.push(c.pwrite(blobs[i]!.subarray(o, o + (64 << 10)), i * region + o));
      await Promise.all(writes);
      await c.flush();
    }));
    expect(up.connections).toBe(1);
    const all = Buffer.concat(blobs);
    const direct = Buffer.alloc(all.length);
    mem.read(direct, 0);
    expect(direct.equals(all)).toBe(true);
    // And each client reads everyone's data back through the proxy.
    await Promise.all(clients.map(async (c, i) => {
      const back = Buffer.alloc(region);
      await c.pread(back, ((i + 3) % 8) * region);
      expect(back.equals(blobs[(i + 3) % 8]!)).toBe(true);
    }));
  });
});

describe.skipIf(!have)('nbdserve nbd: an upstream that is late or goes away', () => {
  it('retry=N waits for a server that starts 2 s late (shared: at start-up; per client: at connect)', async () => {
    const dir = makeTempDir('nbd-retry-');
    cleanups.push(() => runTool('rm', ['-rf', dir]).then(() => undefined));
    const started = Date.now();
    const late = setTimeout(() => {
      void startNbdkit(['pattern', '1M'], { dir }).then((s) => {
        cleanups.push(() => s.stop());
      });
    }, 2000);
    cleanups.push(() => clearTimeout(late));
    // spawnNbdserve waits for the proxy to listen: it does so once the shared connection opened.
    const p = await spawnNbdserve(['nbd', `socket=${join(dir, 'nbdkit.sock')}`, 'shared=true', 'retry=5']);
    cleanups.push(() => p.stop());
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect((await runTool('/usr/bin/nbdinfo', ['--size', p.uri])).stdout).toBe('1048576\n');

    // Per client (not shared): the proxy listens at once, and a client's connection waits.
    const dir2 = makeTempDir('nbd-retry-');
    cleanups.push(() => runTool('rm', ['-rf', dir2]).then(() => undefined));
    const q = await spawnNbdserve(['nbd', `socket=${join(dir2, 'nbdkit.sock')}`, 'retry=5']);
    cleanups.push(() => q.stop());
    const asked = Date.now();
    const info = runTool('/usr/bin/nbdinfo', ['--size', q.uri]);
    await new Promise((r) => setTimeout(r, 2000));
    const s2 = await startNbdkit(['pattern', '3M'], { dir: dir2 });
    cleanups.push(() => s2.stop());
    expect((await info).stdout).toBe('3145728\n');
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1900);

    // Without retries a missing server stops the shared proxy at once, with one line.
    const r = await runTool(process.execPath, [NBDSERVE, '-U', join(dir, 'x.sock'), 'nbd', `socket=${join(dir, 'none.sock')}`, 'shared=true']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^nbdserve: error: nbd: cannot connect to the upstream server: /);
  });

  it('the upstream killed mid-copy: the copy fails, one line on stderr, later clients are served', async () => {
    const dir = makeTempDir('nbd-kill-');
    cleanups.push(() => runTool('rm', ['-rf', dir]).then(() => undefined));
    const up = await startNbdkit(['--filter=delay', 'pattern', '1G', 'rdelay=5ms'], { dir });
    let upStopped = false;
    cleanups.push(() => (upStopped ? undefined : up.stop()));
    const p = await spawnNbdserve(['nbd', `socket=${up.socket}`]);
    cleanups.push(() => p.stop());
    const copy = runTool('/usr/bin/nbdcopy', [p.uri, 'null:']);
    await new Promise((r) => setTimeout(r, 1500));
    process.kill(up.pid, 'SIGKILL');
    await up.stop();
    upStopped = true;
    const r = await copy;
    expect(r.code).not.toBe(0);
    expect(p.child.exitCode).toBe(null);
    // A new upstream on the same socket: the next client gets it, as if nothing happened.
    mkdirSync(dir, { recursive: true });
    const again = await startNbdkit(['pattern', '2M'], { dir });
    cleanups.push(() => again.stop());
    expect((await runTool('/usr/bin/nbdinfo', ['--size', p.uri])).stdout).toBe('2097152\n');
    const lines = p.stderr().trim().split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^nbdserve: warning: nbd: the upstream server went away: /);
  });
});

describe.skipIf(!have)('nbd backend: a command= server that dies', () => {
  it('shared mode starts it again for the next client; stopping the proxy reaps it', async () => {
    const p = await spawnNbdserve(['nbd', 'command=nbdkit', 'arg=pattern', 'arg=1M']);
    cleanups.push(() => p.stop());
    const childOf = (pid: number): number[] => {
      const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
      return r.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
    };
    const first = childOf(p.child.pid!);
    expect(first).toHaveLength(1);
    expect((await runTool('/usr/bin/nbdinfo', ['--size', p.uri])).stdout).toBe('1048576\n');
    process.kill(first[0]!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    expect((await runTool('/usr/bin/nbdinfo', ['--size', p.uri])).stdout).toBe('1048576\n');
    const second = childOf(p.child.pid!);
    expect(second).toHaveLength(1);
    expect(second[0]).not.toBe(first[0]);
    await p.stop();
    expect(() => process.kill(second[0]!, 0)).toThrow();
  });
});

describe.skipIf(!have)('nbd backend: where the upstream is, and TLS towards it', () => {
  it('TLS-PSK to an upstream that requires it: tls=require tls-psk= tls-username=, and an nbds+unix URI with tls-psk=; tls=off is refused', async () => {
    const dir = makeTempDir('nbd-tls-');
    cleanups.push(() => runTool('rm', ['-rf', dir]).then(() => undefined));
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice').path;
    const up = await startNbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', '1M'], { dir });
    cleanups.push(() => up.stop());
    const byParams = await serve({ backend: ['nbd', `socket=${up.socket}`, 'tls=require', `tls-psk=${psk}`, 'tls-username=alice'] });
    // As with nbdkit's nbd plugin, the URI says TLS and the user; the key file is a parameter.
    const byUri = await serve({ backend: ['nbd', `nbds+unix://alice@/?socket=${up.socket}`, `tls-psk=${psk}`] });
    for (const px of [byParams, byUri]) {
      const c = await client(px.uri);
      expect(c.connection.tls).toBe(false);
      const buf = Buffer.alloc(16);
      await c.pread(buf, 8);
      expect(buf.readBigUInt64BE(0)).toBe(8n);
    }
    // The front is plain: TLS towards the upstream is its own setting.
    const plain = await serve({ backend: ['nbd', `socket=${up.socket}`, 'tls=off'] });
    await expect(client(plain.uri)).rejects.toThrow();
  });

  it('uri= naming a local file (tls-psk-file=, tls-certificates=) is refused at start-up, as nbdkit refuses it', async () => {
    const dir = makeTempDir('nbd-tls-');
    cleanups.push(() => runTool('rm', ['-rf', dir]).then(() => undefined));
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice').path;
    const up = await startNbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', '1M'], { dir });
    cleanups.push(() => up.stop());
    const socket = join(dir, 'front.sock');
    for (const [key, param] of [['tls-psk-file', 'tls-psk'], ['tls-certificates', 'tls-certificates']]) {
      const uri = `nbds+unix://alice@/?socket=${up.socket}&${key}=${key === 'tls-psk-file' ? psk : dir}`;
      const e = await serve({ backend: ['nbd', uri], unixSocket: socket }).then(() => undefined, (err: unknown) => err);
      expect(e).toMatchObject({ name: 'NbdError', code: 'EPERM' });
      expect((e as Error).message).toBe(`nbd: uri= must not name local files (${key}=), as with nbdkit's nbd plugin: use the ${param}= parameter instead`);
      // Nothing listens: the refusal came before the socket was made.
      expect(await canConnectUnix(socket)).toBe(false);
    }
  });

  it('hostname= with port= as a number or a service name, and socket-fd= (an inherited connected socket)', async () => {
    const port = await freePort();
    const dir = makeTempDir('nbd-where-');
    cleanups.push(() => runTool('rm', ['-rf', dir]).then(() => undefined));
    const kit = spawn('nbdkit', ['-f', '-p', String(port), '-i', '127.0.0.1', 'pattern', '2M'], { stdio: 'ignore' });
    cleanups.push(() => new Promise<void>((resolve) => {
      if (kit.exitCode !== null) return resolve();
      kit.once('exit', () => resolve());
      kit.kill('SIGTERM');
    }));
    const tcp = await serve({ backend: ['nbd', 'hostname=127.0.0.1', `port=${port}`, 'retry=5'] });
    expect((await client(tcp.uri)).export.size).toBe(2 << 20);
    // Service names are looked up in /etc/services ('nbd' is 10809 there); a services file
    // of our own names this server's port.
    expect(resolvePort('nbd')).toBe(10809);
    writeFileSync(join(dir, 'services'), `# test\nnbd-test\t${port}/tcp\tnbdtest # alias\n`);
    expect(resolvePort('nbdtest', join(dir, 'services'))).toBe(port);
    expect(() => resolvePort('nbd-nope', join(dir, 'services'))).toThrow(/unknown port or service name 'nbd-nope'/);

    // socket-fd=3: nbdserve inherits a socket already connected to the upstream.
    const up = await startNbdkit(['memory', '3M'], { dir });
    cleanups.push(() => up.stop());
    const conn = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(up.socket, () => resolve(s));
      s.on('error', reject);
    });
    const sock = join(dir, 'px.sock');
    const px = spawn(process.execPath, [NBDSERVE, '-U', sock, 'nbd', 'socket-fd=3'], { stdio: ['ignore', 'ignore', 'pipe', conn] });
    conn.destroy();
    cleanups.push(() => new Promise<void>((resolve) => {
      if (px.exitCode !== null) return resolve();
      px.once('exit', () => resolve());
      px.kill('SIGTERM');
    }));
    for (const until = Date.now() + 15_000; !(await canConnectUnix(sock)); ) {
      if (px.exitCode !== null || Date.now() > until) throw new Error('nbdserve socket-fd=3 did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const c = await client(`nbd+unix:///?socket=${sock}`);
    expect(c.export.size).toBe(3 << 20);
    expect(c.export.canMultiConn).toBe(true);
  });
});

describe('nbdserve nbd: bad parameters are one line and exit status 1', () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /where is the server/],
    [['socket=/a', 'hostname=b'], /hostname and socket cannot be used together/],
    [['socket=/a', 'arg=x'], /arg= is only for command=/],
    [['socket=/a', 'port=1'], /port= is only for/],
    [['nbd://h/x', 'export=y'], /export= cannot be used with uri=/],
    [['command=true', 'dynamic-export=true'], /dynamic-export=true needs shared=false/],
    [['socket=/a', 'shared=maybe'], /shared must be a boolean/],
    [['socket=/a', 'retry=-1'], /retry must be an integer/],
    [['socket=/a', 'tls=sometimes'], /tls must be off, on or require/],
    [['socket=/a', 'colour=blue'], /unknown parameter 'colour'/],
    [['hostname=localhost', 'port=no-such-service'], /unknown port or service name/],
    [['socket-fd=3', 'shared=false'], /cannot be used with shared=false/],
    [['vhost-cid=x'], /vhost-cid must be an integer/],
    [['http://example.com/'], /./],
    [['nbds+unix:///?socket=/a&tls-psk-file=/k'], /^nbdserve: error: nbd: uri= must not name local files \(tls-psk-file=\), as with nbdkit's nbd plugin: use the tls-psk= parameter instead$/m],
    [['uri=nbds://h/?tls-certificates=/c', 'tls-psk=/k'], /uri= must not name local files \(tls-certificates=\).*use the tls-certificates= parameter/],
  ];
  for (const [params, why] of cases) {
    it(`nbd ${params.join(' ') || '(nothing)'}`, async () => {
      ensureBuilt();
      const r = await runTool(process.execPath, [NBDSERVE, '-U', join(makeTempDir('nbd-bad-'), 's'), 'nbd', ...params]);
      expect(r.code).toBe(1);
      expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
      expect(r.stderr).toMatch(/^nbdserve: error: /);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).not.toMatch(/^\s+at /m);
    });
  }
});
