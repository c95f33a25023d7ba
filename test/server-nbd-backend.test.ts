// The nbd backend (nbdserve nbd ...: forward to another NBD server) against real upstreams:
// what libnbd's nbdinfo sees through it equals what it sees directly (nbdkit, qemu-nbd,
// nbd-server), meta contexts pass through (dirty bitmaps), dynamic export lists, the plugin
// page's two examples, shared mode under concurrent writers, retry=, and an upstream that dies.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { spawnNbdserve } from './helpers/embedded.js';
import { runTool } from './helpers/run-tool.js';
import { freePort, startNbdServer, startNbdkit, startQemuNbd } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { NBDSERVE } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const have = requireBinaries('nbdkit', 'qemu-nbd', 'qemu-img', 'qemu-io', 'nbd-server', '/usr/bin/nbdinfo', '/usr/bin/nbdcopy');
const cleanups = teardownAfterEach();

function tempDir(): string {
  const dir = makeTempDir('nbd-proxy-');
  cleanups.push(() => { spawnSync('rm', ['-rf', dir]); });
  return dir;
}

async function proxy(args: string[]): Promise<Awaited<ReturnType<typeof spawnNbdserve>>> {
  const p = await spawnNbdserve(args);
  cleanups.push(() => p.stop());
  return p;
}

async function nbdinfo(args: string[]): Promise<string> {
  const r = await runTool('/usr/bin/nbdinfo', args);
  if (r.code !== 0) throw new Error(`nbdinfo ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** nbdinfo --json without the lines that name the connection itself. */
function jsonFacts(text: string): unknown {
  const j = JSON.parse(text) as Record<string, unknown>;
  delete j.uri;
  delete j.protocol;
  for (const e of j.exports as Array<Record<string, unknown>>) delete e.uri;
  return j;
}

async function sameAsDirect(direct: string, proxied: string, maps: string[] = ['']): Promise<void> {
  expect(jsonFacts(await nbdinfo(['--json', proxied]))).toEqual(jsonFacts(await nbdinfo(['--json', direct])));
  for (const m of maps) {
    const flag = m === '' ? '--map' : `--map=${m}`;
    const want = await nbdinfo([flag, direct]);
    expect(want.length).toBeGreaterThan(0);
    expect(await nbdinfo([flag, proxied])).toBe(want);
  }
}

/** A qcow2 image with data, a hole, a dirty bitmap b0 and a write after the bitmap began. */
function makeQcow2(dir: string): string {
  const img = join(dir, 'disk.qcow2');
  const run = (cmd: string, args: string[]): void => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  };
  run('qemu-img', ['create', '-f', 'qcow2', img, '64M']);
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 1M 2M', img]);
  run('qemu-img', ['bitmap', '--add', img, 'b0']);
  run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x66 8M 1M', img]);
  return img;
}

describe.skipIf(!have)('nbdserve nbd: pass-through', () => {
  it('nbdinfo --json and --map through the proxy equal direct, from nbdkit', async () => {
    const up = await startNbdkit(['sparse-random', '16M', 'seed=7']);
    cleanups.push(() => up.stop());
    const p = await proxy(['nbd', `socket=${up.socket}`]);
    await sameAsDirect(up.uri, p.uri);
  });

  it('from qemu-nbd, with its dirty bitmap and allocation depth contexts', async () => {
    const dir = tempDir();
    const up = await startQemuNbd(['-r', '-f', 'qcow2', '-B', 'b0', '-A', makeQcow2(dir)]);
    cleanups.push(() => up.stop());
    const p = await proxy(['nbd', up.uri]);
    await sameAsDirect(up.uri, p.uri, ['', 'qemu:dirty-bitmap:b0', 'qemu:allocation-depth']);
    // The bitmap says what was written after it began: 1 MiB at 8 MiB, the rest clean.
    expect(await nbdinfo(['--map=qemu:dirty-bitmap:b0', p.uri])).toMatch(/^\s+8388608\s+1048576\s+1\s+dirty$/m);
  });

  it('from nbd-server, and its export list through dynamic-export=true', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'a.img'), Buffer.alloc(1 << 20, 0xaa));
    writeFileSync(join(dir, 'b.img'), Buffer.alloc(2 << 20, 0xbb));
    const up = await startNbdServer([{ name: 'alpha', file: join(dir, 'a.img') }, { name: 'beta', file: join(dir, 'b.img'), readOnly: true }]);
    cleanups.push(() => up.stop());
    const p = await proxy(['-e', 'alpha', 'nbd', `socket=${up.socket}`, 'export=alpha']);
    const proxied = p.uri.replace(':///?', ':///alpha?');
    // nbd-server has no structured replies; our side has them, so nbdinfo also lists the
    // (no) meta contexts: those two lines say how each side speaks, not what the export is.
    // nbd-server 3.24 answers NBD_OPT_INFO with size 0 (nbdinfo --json shows 0 directly,
    // --size the real size); the proxy opens with NBD_OPT_GO and has the real one.
    const facts = (text: string): unknown => {
      const j = jsonFacts(text) as Record<string, unknown>;
      delete j.structured;
      for (const e of j.exports as Array<Record<string, unknown>>) {
        for (const k of ['contexts', 'export-size', 'export-size-str', 'content']) delete e[k];
      }
      return j;
    };
    expect(facts(await nbdinfo(['--json', proxied]))).toEqual(facts(await nbdinfo(['--json', up.uri])));
    expect(await nbdinfo(['--size', proxied])).toBe(await nbdinfo(['--size', up.uri]));
    expect(await nbdinfo(['--size', proxied])).toBe(`${1 << 20}\n`);

    const dyn = await proxy(['nbd', `socket=${up.socket}`, 'dynamic-export=true']);
    const listed = await nbdinfo(['--list', '--json', dyn.uri]);
    const names = (JSON.parse(listed) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name']);
    expect(names).toEqual(['alpha', 'beta']);
    // Each client's export name reaches the upstream: beta is 2 MiB of 0xbb and read-only.
    const b = await connect(dyn.uri.replace(':///?', ':///beta?'));
    try {
      expect(b.export.size).toBe(2 << 20);
      expect(b.export.readOnly).toBe(true);
      const buf = Buffer.alloc(4096);
      await b.pread(buf, 4096);
      expect(buf.every((x) => x === 0xbb)).toBe(true);
    } finally {
      await b.close();
    }
  });
});

/** bin/nbdserve ARGS on TCP 127.0.0.1:<free port>; resolves once it accepts connections. */
async function proxyOnTcp(args: string[]): Promise<{ port: number; child: ChildProcess; stderr: () => string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [NBDSERVE, '-p', String(port), '-i', '127.0.0.1', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  cleanups.push(() => stopChild(child));
  for (const until = Date.now() + 15_000; ;) {
    if (child.exitCode !== null) throw new Error(`nbdserve exited: ${err}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > until) throw new Error('nbdserve did not listen');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, child, stderr: () => err };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!have)('nbdserve nbd: the plugin page examples', () => {
  it('an oldstyle server on a Unix socket, served as TLS-required newstyle on TCP to nbdinfo and nbdcopy with a PSK', async () => {
    const dir = tempDir();
    const data = randomBytes(3 << 20);
    writeFileSync(join(dir, 'disk.img'), data);
    const old = await spawnNbdserve(['-o', 'file', join(dir, 'disk.img')]);
    cleanups.push(() => old.stop());
    const psk = join(dir, 'keys.psk');
    run('psktool', ['-u', 'alice', '-p', psk]);
    const { port } = await proxyOnTcp(['--tls=require', `--tls-psk=${psk}`, 'nbd', `socket=${old.socket}`]);
    const uri = `nbds://alice@127.0.0.1:${port}/?tls-psk-file=${psk}`;
    const info = await nbdinfo(['--json', uri]);
    const j = JSON.parse(info) as Record<string, unknown>;
    expect(j.protocol).toBe('newstyle-fixed');
    expect(j.TLS).toBe(true);
    expect((j.exports as Array<Record<string, unknown>>)[0]!['export-size']).toBe(3 << 20);
    // Without TLS the proxy refuses: TLS is required towards its clients.
    expect((await runTool('/usr/bin/nbdinfo', [`nbd://127.0.0.1:${port}/`])).code).not.toBe(0);
    const out = join(dir, 'copy.img');
    const r = await runTool('/usr/bin/nbdcopy', [uri, out]);
    expect(r.stderr).toBe('');
    expect(readFileSync(out).equals(data)).toBe(true);
  });

  it('command=qemu-nbd arg=-f arg=qcow2 arg=DISK: copied as qemu-img converts it, written back through the proxy', async () => {
    const dir = tempDir();
    const img = makeQcow2(dir);
    const p = await proxy(['nbd', 'command=qemu-nbd', 'arg=-f', 'arg=qcow2', `arg=${img}`]);
    const copy = join(dir, 'copy.raw');
    const want = join(dir, 'want.raw');
    expect((await runTool('/usr/bin/nbdcopy', [p.uri, copy])).stderr).toBe('');
    run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', img, want]);
    expect(readFileSync(copy).equals(readFileSync(want))).toBe(true);

    // Now write new content through the proxy, then compare the qcow2 with it.
    const fresh = join(dir, 'fresh.raw');
    const content = Buffer.alloc(64 << 20);
    randomBytes(5 << 20).copy(content, 7 << 20);
    content.fill(0x11, 40 << 20, 41 << 20);
    writeFileSync(fresh, content);
    expect((await runTool('/usr/bin/nbdcopy', [fresh, p.uri])).stderr).toBe('');
    // Stopping the proxy stops (and reaps) qemu-nbd, which lets go of the image.
    const before = run('pgrep', ['-f', `qemu-nbd -f qcow2 ${img}`]).trim();
    expect(before).not.toBe('');
    await p.stop();
    expect(spawnSync('pgrep', ['-f', `qemu-nbd -f qcow2 ${img}`]).status).toBe(1);
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, fresh], { encoding: 'utf8' });
    expect(cmp.stdout).toMatch(/Images are identical/);
    expect(cmp.status).toBe(0);
  });
});
