// The single-file CLI bundles (dist/bundle/<tool>.cjs, built by `npm run build`), their trained
// V8 code caches (dist/bundle/<tool>.v8cache) and the bin/ launchers that prefer them.
// Everything runs in a private copy of bin/ next to a bundle built here with the exact esbuild
// command of package.json's build script and trained by its training script, so other builds
// of the shared dist/ (a plain `npx tsc` makes the repo's bundle stale on purpose) cannot
// change what is tested. No timing here: start-up figures belong to the benchmarks.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from './helpers/embedded.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { REPO, ensureBuilt } from './helpers/build.js';
import { requireBinary } from './helpers/binaries.js';

const TOOLS = ['nbdinfo', 'nbdcopy', 'nbdserve'] as const;
const LAUNCHER_FILES = [...TOOLS, 'launch.cjs', 'package.json'];
const PACKAGE = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
};

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: 30_000, env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0 });
    });
  });
}

/** A package root with copies of our launchers (so their __dirname is here) and the repo's node_modules. */
function fakeRoot(prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(root, 'bin'));
  for (const f of LAUNCHER_FILES) copyFileSync(join(REPO, 'bin', f), join(root, 'bin', f));
  for (const t of TOOLS) spawnSync('chmod', ['+x', join(root, 'bin', t)]);
  copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  return root;
}

/** The steps of `npm run build` after tsc, building and training the bundles of `root` instead. */
function bundleInto(root: string): void {
  const steps = (PACKAGE.scripts['build'] ?? '').split('&&').map((s) => s.trim());
  const esbuild = steps.find((s) => s.startsWith('esbuild '));
  if (esbuild === undefined) throw new Error(`package.json's build script runs no esbuild: ${steps.join(' && ')}`);
  const args = esbuild.split(/\s+/).slice(1);
  const i = args.indexOf('--outdir=dist/bundle');
  if (i < 0) throw new Error(`the esbuild command has no --outdir=dist/bundle: ${esbuild}`);
  args[i] = `--outdir=${join(root, 'dist', 'bundle')}`;
  const built = spawnSync(join(REPO, 'node_modules', '.bin', 'esbuild'), args, { cwd: REPO, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`esbuild failed: ${built.stderr}`);

  const train = steps.find((s) => s.includes('train-code-cache'));
  if (train === undefined) throw new Error('package.json\'s build script trains no code cache');
  ensureBuilt(); // the training server comes from the repo's dist/
  const trained = spawnSync(process.execPath, [join(REPO, 'scripts', 'train-code-cache.mjs'), root], { encoding: 'utf8' });
  if (trained.status !== 0 || trained.stderr !== '') throw new Error(`training failed: ${trained.stderr}`);
}

/** What V8 made of `tool`'s code cache in a fresh Node: accepted, rejected, or none offered. */
function cacheVerdict(root: string, tool: string): string {
  const script = `
    const { statSync } = require('node:fs');
    const { compileBundle } = require(${JSON.stringify(join(root, 'bin', 'launch.cjs'))});
    const bundle = ${JSON.stringify(join(root, 'dist', 'bundle', `${tool}.cjs`))};
    const s = compileBundle(bundle, statSync(bundle).mtimeMs, ${JSON.stringify(join(root, 'dist', 'bundle', `${tool}.v8cache`))});
    process.stdout.write(s.cachedDataRejected === undefined ? 'none' : s.cachedDataRejected ? 'rejected' : 'accepted');`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

/** 8-byte big-endian offsets, the bytes of nbdkit's (and our server's) pattern backend. */
function patternBytes(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let off = 0; off < size; off += 8) b.writeBigUInt64BE(BigInt(off), off);
  return b;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function waitForSocket(path: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`nbdserve exited with ${child.exitCode}`);
    const ok = existsSync(path) && await new Promise<boolean>((resolve) => {
      const s = net.connect({ path });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('nbdserve did not start listening');
}

describe('bundled CLIs', () => {
  let root = '';
  let server: Embedded | undefined;
  const children: ChildProcess[] = [];
  const bin = (tool: string) => join(root, 'bin', tool);

  beforeAll(() => {
    root = fakeRoot('startup-bundle-');
    bundleInto(root);
  });

  afterAll(async () => {
    await server?.stop();
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await new Promise((r) => c.once('exit', r));
      }
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('builds one file per tool, and code caches V8 accepts for nbdinfo and nbdcopy', () => {
    for (const t of TOOLS) expect(existsSync(join(root, 'dist', 'bundle', `${t}.cjs`)), t).toBe(true);
    // No dist/cli here: the launchers can only have run the bundles in the tests below.
    expect(existsSync(join(root, 'dist', 'cli'))).toBe(false);
    expect(cacheVerdict(root, 'nbdinfo')).toBe('accepted');
    expect(cacheVerdict(root, 'nbdcopy')).toBe('accepted');
    expect(cacheVerdict(root, 'nbdserve')).toBe('none');
  });

  it('--version reads the package version', async () => {
    for (const t of ['nbdinfo', 'nbdcopy']) {
      const r = await run(bin(t), ['--version']);
      expect(r, t).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout.split('\n')[0]).toBe(`${t} ${PACKAGE.version}`);
    }
  });

  it('--help prints the usage of each tool', async () => {
    const info = await run(bin('nbdinfo'), ['--help']);
    expect(info.code).toBe(0);
    expect(info.stdout).toMatch(/nbdinfo/);
    const copy = await run(bin('nbdcopy'), ['--help']);
    expect(copy.code).toBe(0);
    expect(copy.stdout).toMatch(/^Usage: nbdcopy/);
    const serve = await run(bin('nbdserve'), ['--help']);
    expect(serve.stdout + serve.stderr).toMatch(/usage: nbdserve/);
  });

  it('a usage error is one line on stderr and exit status 1', async () => {
    const r = await run(bin('nbdinfo'), []);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^nbdinfo: /);
  });

  it('nbdinfo --json on an in-process server: the same bytes as tsc\'s modules print', async () => {
    server = await startEmbedded({ backend: ['memory', '3M'], exportName: 'disk' });
    const uri = `nbd+unix:///disk?socket=${server.socket}`;
    const bundled = await run(bin('nbdinfo'), ['--json', uri]);
    expect(bundled.stderr).toBe('');
    expect(bundled.code).toBe(0);
    const facts = JSON.parse(bundled.stdout) as { exports: Array<{ 'export-name': string; 'export-size': number }> };
    expect(facts.exports[0]).toMatchObject({ 'export-name': 'disk', 'export-size': 3 << 20 });

    ensureBuilt();
    const modules = await run(join(REPO, 'bin', 'nbdinfo'), ['--json', uri], { ...process.env, NBD_TOOLKIT_NO_BUNDLE: '1' });
    expect(modules.code).toBe(0);
    expect(bundled.stdout).toBe(modules.stdout);

    const text = await run(bin('nbdinfo'), [uri]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/export-size: 3145728 \(3M\)/);
  });

  it('nbdinfo --json loads neither TLS, crypto nor koffi for a plain Unix socket', async () => {
    server ??= await startEmbedded({ backend: ['memory', '3M'], exportName: 'disk' });
    const probe = join(root, 'loaded.cjs');
    // Reports, at exit, which optional pieces the run pulled in: start-up cost, not timing.
    writeFileSync(probe, `process.on('exit', () => {
  const builtins = process.moduleLoadList.filter((m) => /^NativeModule (tls|crypto)$/.test(m));
  const koffi = Object.keys(require.cache).filter((k) => k.includes('koffi'));
  require('node:fs').writeSync(2, 'LOADED ' + JSON.stringify([...builtins, ...koffi]) + '\\n');
});\n`);
    for (const args of [['--version'], ['--json', `nbd+unix:///disk?socket=${server.socket}`]]) {
      const r = await new Promise<Outcome>((resolve) => {
        execFile(process.execPath, ['--require', probe, bin('nbdinfo'), ...args], { encoding: 'utf8', timeout: 30_000 },
          (err, stdout, stderr) => resolve({ stdout, stderr, code: err ? -1 : 0 }));
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr.trim(), args.join(' ')).toBe('LOADED []');
    }
  });

  it('nbdserve, nbdcopy and nbdinfo bundles together: pattern bytes copied to a file', async () => {
    const sock = join(root, 'pattern.sock');
    const child = spawn(bin('nbdserve'), ['-U', sock, 'pattern', '1M'], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    await waitForSocket(sock, child);
    const uri = `nbd+unix:///?socket=${sock}`;

    const size = await run(bin('nbdinfo'), ['--size', uri]);
    expect(size).toMatchObject({ code: 0, stdout: '1048576\n', stderr: '' });

    const out = join(root, 'copy.img');
    const copy = await run(bin('nbdcopy'), [uri, out]);
    expect(copy).toMatchObject({ code: 0, stderr: '' });
    expect(sha256(readFileSync(out))).toBe(sha256(patternBytes(1 << 20)));
  });

  it('nbdserve --tls=require: the bundled TLS module is loaded on demand, with no warning', async () => {
    // listener.ts and negotiate.ts import ../tls/server.js with a literal specifier, so esbuild
    // puts it in the bundle (evaluated lazily). The dist/tls link below is a leftover from when
    // the bundle loaded tsc's dist/tls/server.js instead; it does no harm.
    if (!requireBinary('psktool')) return;
    ensureBuilt();
    if (!existsSync(join(root, 'dist', 'tls'))) symlinkSync(join(REPO, 'dist', 'tls'), join(root, 'dist', 'tls'));
    const psk = makePskFile(join(root, 'keys.psk'), 'alice');
    const sock = join(root, 'tls.sock');
    const child = spawn(bin('nbdserve'), ['-U', sock, '--tls=require', '--tls-psk', psk.path, 'memory', '2M'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let serverErr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { serverErr += d; });
    await waitForSocket(sock, child);
    const r = await run(bin('nbdinfo'), ['--size', `nbds+unix://alice@/?socket=${sock}&tls-psk-file=${psk.path}`]);
    expect(r).toMatchObject({ code: 0, stdout: '2097152\n', stderr: '' });
    expect(serverErr).toBe('');
  });

  it('a code cache older than its bundle is not offered to V8; a damaged one is rejected and the tool still runs', async () => {
    const bundle = join(root, 'dist', 'bundle', 'nbdinfo.cjs');
    const cache = join(root, 'dist', 'bundle', 'nbdinfo.v8cache');
    const saved = readFileSync(cache);
    try {
      const old = new Date(Date.now() - 60_000);
      utimesSync(cache, old, old);
      expect(cacheVerdict(root, 'nbdinfo')).toBe('none');
      expect((await run(bin('nbdinfo'), ['--version'])).code).toBe(0);

      writeFileSync(cache, Buffer.alloc(saved.length, 0x5a));
      expect(cacheVerdict(root, 'nbdinfo')).toBe('rejected');
      const r = await run(bin('nbdinfo'), ['--version']);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout.split('\n')[0]).toBe(`nbdinfo ${PACKAGE.version}`);
    } finally {
      writeFileSync(cache, saved);
    }
    expect(cacheVerdict(root, 'nbdinfo')).toBe('accepted');
    expect(statSync(cache).mtimeMs).toBeGreaterThanOrEqual(statSync(bundle).mtimeMs);
  });
});

describe('launcher: which build runs', () => {
  let root = '';
  const bundle = () => join(root, 'dist', 'bundle', 'nbdinfo.cjs');
  const modules = () => join(root, 'dist', 'cli', 'nbdinfo.js');

  beforeAll(() => {
    root = fakeRoot('startup-launcher-');
    mkdirSync(join(root, 'dist', 'bundle'), { recursive: true });
    mkdirSync(join(root, 'dist', 'cli'), { recursive: true });
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  // Stand-ins that say which one ran and what they were given.
  function writeBundle(): void {
    writeFileSync(bundle(), `exports.main = (argv) => process.stdout.write('bundle ' + argv.join(' ') + '\\n');\n`);
  }
  function writeModules(): void {
    writeFileSync(modules(), `export function main(argv) { process.stdout.write('modules ' + argv.join(' ') + '\\n'); }\n`);
  }
  function age(path: string, secondsAgo: number): void {
    const t = new Date(Date.now() - secondsAgo * 1000);
    utimesSync(path, t, t);
  }

  it('runs the bundle when it is newer than tsc\'s output', async () => {
    writeModules();
    writeBundle();
    age(modules(), 60);
    age(bundle(), 10);
    expect((await run(join(root, 'bin', 'nbdinfo'), ['a', '--b'])).stdout).toBe('bundle a --b\n');
  });

  it('runs tsc\'s modules when the bundle is older (tsc ran alone since the last full build)', async () => {
    age(bundle(), 60);
    age(modules(), 10);
    expect((await run(join(root, 'bin', 'nbdinfo'), ['x'])).stdout).toBe('modules x\n');
  });

  it('NBD_TOOLKIT_NO_BUNDLE=1 forces tsc\'s modules', async () => {
    age(modules(), 60);
    age(bundle(), 10);
    const r = await run(join(root, 'bin', 'nbdinfo'), ['y'], { ...process.env, NBD_TOOLKIT_NO_BUNDLE: '1' });
    expect(r.stdout).toBe('modules y\n');
  });

  it('runs tsc\'s modules when there is no bundle', async () => {
    rmSync(bundle());
    expect((await run(join(root, 'bin', 'nbdinfo'), ['z'])).stdout).toBe('modules z\n');
  });

  it('with nothing built: one line saying what to do, exit status 1', async () => {
    rmSync(modules());
    const r = await run(join(root, 'bin', 'nbdinfo'), ['--version']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^nbdinfo: cannot load dist\/cli\/nbdinfo\.js \(run npm run build\)/);
  });
});
