// nbdinfo's failures: every bad input ends with exactly one "nbdinfo: ..." line on stderr,
// nothing on stdout, exit status 1 (the exit codes are checked against libnbd's nbdinfo),
// no stack trace unless NBD_DEBUG=1, and no subprocess left behind.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canConnectUnix } from './helpers/servers.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const OURS = join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const NEEDED = [THEIRS, '/usr/bin/nbdkit', '/usr/bin/psktool'];
const missing = NEEDED.filter((p) => !existsSync(p));
if (missing.length > 0) {
  if (process.env.CI === 'true') throw new Error(`nbdinfo error tests need ${missing.join(', ')}`);
  console.warn(`!!! SKIPPING nbdinfo error tests: missing ${missing.join(', ')}`);
}
const maybe = missing.length > 0 ? describe.skip : describe;

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: 30_000, env }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0 });
    });
  });
}

let dir = '';
const children: ChildProcess[] = [];
let plain = '';
let tlsSock = '';
let pskFile = '';

async function startNbdkit(name: string, args: string[]): Promise<string> {
  const sock = join(dir, `${name}.sock`);
  const child = spawn('nbdkit', ['-f', '-U', sock, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  // Its socket file exists a moment before it listens: wait for a connect to succeed.
  const deadline = Date.now() + 15_000;
  while (!(await canConnectUnix(sock))) {
    if (child.exitCode !== null) throw new Error(`nbdkit ${args.join(' ')} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`nbdkit ${args.join(' ')} did not listen on ${sock}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  return sock;
}

/** Our outcome for `args`, checked for the failure contract; libnbd must fail with the same code. */
async function expectFailure(args: string[], message: RegExp, compare = true): Promise<Outcome> {
  const ours = await runTool(OURS, args);
  expect(ours.code, `${args.join(' ')}: ${ours.stderr}`).toBe(1);
  expect(ours.stdout).toBe('');
  const lines = ours.stderr.trimEnd().split('\n');
  // A subprocess server may print its own complaints first; ours is always the last line, and alone.
  const last = lines[lines.length - 1]!;
  expect(last).toMatch(/^nbdinfo: /);
  expect(last).toMatch(message);
  expect(lines.filter((l) => l.startsWith('nbdinfo: '))).toHaveLength(1);
  expect(ours.stderr).not.toMatch(/\n\s+at /);
  if (compare) expect((await runTool(THEIRS, args)).code, `libnbd exit code for ${args.join(' ')}`).toBe(1);
  return ours;
}

maybe('nbdinfo errors', () => {
  beforeAll(async () => {
    if (!existsSync(join(REPO, 'dist', 'cli', 'nbdinfo.js'))) {
      spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'inherit' });
    }
    dir = mkdtempSync(join(tmpdir(), 'nbdinfo-errors-'));
    pskFile = join(dir, 'keys.psk');
    const r = spawnSync('psktool', ['-u', 'alice', '-p', pskFile], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`psktool: ${r.stderr}`);
    plain = `nbd+unix:///?socket=${await startNbdkit('plain', ['memory', '1M'])}`;
    tlsSock = await startNbdkit('tls', ['--tls=require', `--tls-psk=${pskFile}`, 'memory', '1M']);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('usage mistakes', async () => {
    await expectFailure([], /missing NBD URI/);
    await expectFailure(['nbd://a', 'nbd://b'], /expected one NBD URI/);
    await expectFailure(['--bogus', plain], /unrecognized option '--bogus'/);
    await expectFailure(['-x', plain], /invalid option -- 'x'/);
    await expectFailure(['--can'], /option '--can' requires an argument/);
    await expectFailure(['--list', '--size', plain], /you cannot use --list, --map and --size together/);
    await expectFailure(['--map', '--is', 'tls', plain], /you cannot use --list, --map and --size together/);
    await expectFailure(['--content', '--no-content', plain], /you cannot use --content and --no-content together/);
    await expectFailure(['--totals', plain], /you must use --totals only with --map option/);
  });

  it('bad URIs', async () => {
    await expectFailure(['bogus://x'], /unknown scheme 'bogus'/);
    await expectFailure(['notauri'], /no scheme/);
    await expectFailure(['nbd+unix://'], /socket=/);
    await expectFailure(['nbd://localhost:99999/'], /port/);
  });

  it('nothing listening', async () => {
    await expectFailure([`nbd+unix:///?socket=${join(dir, 'nothing.sock')}`], /nothing\.sock.*ENOENT|no such file/i);
    await expectFailure(['--size', 'nbd://127.0.0.1:1/'], /127\.0\.0\.1:1.*(ECONNREFUSED|refused)/i);
    await expectFailure(['--map', 'nbd://127.0.0.1:1/'], /ECONNREFUSED|refused/i);
  });

  it('TLS required but not asked for; with the key it works', async () => {
    const noTls = `nbd+unix:///?socket=${tlsSock}`;
    await expectFailure([noTls], /TLS/);
    await expectFailure(['--size', noTls], /TLS/);
    await expectFailure(['--list', noTls], /TLS/);
    const withTls = `nbds+unix://alice@/?socket=${tlsSock}&tls-psk-file=${pskFile}`;
    const [ours, theirs] = await Promise.all([runTool(OURS, ['--json', withTls]), runTool(THEIRS, ['--json', withTls])]);
    expect(ours.code).toBe(0);
    expect(ours.stdout).toBe(theirs.stdout);
    expect(JSON.parse(ours.stdout).TLS).toBe(true);
    expect((await runTool(OURS, ['--is', 'tls', withTls])).code).toBe(0);
    expect((await runTool(OURS, ['--is', 'tls', plain])).code).toBe(2);
    // A wrong key must fail, not hang or fall back to plaintext.
    const badKeys = join(dir, 'bad.psk');
    spawnSync('psktool', ['-u', 'alice', '-p', badKeys]);
    await expectFailure([`nbds+unix://alice@/?socket=${tlsSock}&tls-psk-file=${badKeys}`], /./);
  });

  it('unknown --can name, unsupported map context', async () => {
    await expectFailure(['--can', 'teleport', plain], /unknown --can or --is option: teleport/);
    await expectFailure(['--map=qemu:dirty-bitmap:none', plain], /--map: server does not support metadata context "qemu:dirty-bitmap:none"/);
  });

  it('subprocess servers that fail, and none left behind after success', async () => {
    await expectFailure(['--', '[', 'false', ']'], /./);
    await expectFailure(['--', '[', join(dir, 'no-such-server'), ']'], /./);
    await expectFailure(['--', '[', 'nbdkit', 'no-such-plugin-xyz', ']'], /./);
    const marker = String(1048576 + Math.floor(Math.random() * 1000) * 512);
    const ok = await runTool(OURS, ['--size', '--', '[', 'nbdkit', 'memory', marker, ']']);
    expect(ok).toEqual({ stdout: `${marker}\n`, stderr: '', code: 0 });
    const left = spawnSync('pgrep', ['-f', `nbdkit memory ${marker}`], { encoding: 'utf8' });
    expect(left.stdout.trim()).toBe('');
  });

  it('stack traces only with NBD_DEBUG=1', async () => {
    const uri = `nbd+unix:///?socket=${join(dir, 'nothing.sock')}`;
    const quiet = await runTool(OURS, [uri]);
    expect(quiet.stderr.trimEnd().split('\n')).toHaveLength(1);
    const loud = await runTool(OURS, [uri], { ...process.env, NBD_DEBUG: '1' });
    expect(loud.code).toBe(1);
    expect(loud.stderr).toMatch(/\n\s+at /);
  });

  it('--help, --version, --long-options, --short-options', async () => {
    const help = await runTool(OURS, ['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--map/);
    const version = await runTool(OURS, ['--version']);
    expect(version.code).toBe(0);
    // libnbd prints "nbdinfo 1.14.2\nlibnbd 1.14.2": same shape, our own version numbers.
    expect(version.stdout).toMatch(/^nbdinfo \d+\.\d+\.\d+\nnbd-toolkit \d+\.\d+\.\d+\n$/);
    for (const flag of ['--long-options', '--short-options']) {
      const [ours, theirs] = await Promise.all([runTool(OURS, [flag]), runTool(THEIRS, [flag])]);
      expect(ours).toEqual(theirs);
    }
  });
});
