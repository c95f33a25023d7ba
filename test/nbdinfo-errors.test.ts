// nbdinfo's failures: every bad input ends with exactly one "nbdinfo: ..." line on stderr,
// nothing on stdout, exit status 1 (the exit codes are checked against libnbd's nbdinfo),
// no stack trace unless NBD_DEBUG=1, and no subprocess left behind.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool, type Outcome } from './helpers/run-tool.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { REPO, ensureBuilt } from './helpers/build.js';

const OURS = join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const have = requireBinaries(THEIRS, '/usr/bin/nbdkit', '/usr/bin/psktool');
const maybe = have ? describe : describe.skip;

let dir = '';
const servers: RunningServer[] = [];
let plain = '';
let tlsSock = '';
let pskFile = '';

async function nbdkit(args: string[]): Promise<string> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s.socket;
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
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'nbdinfo-errors-'));
    pskFile = join(dir, 'keys.psk');
    const r = spawnSync('psktool', ['-u', 'alice', '-p', pskFile], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`psktool: ${r.stderr}`);
    plain = `nbd+unix:///?socket=${await nbdkit(['memory', '1M'])}`;
    tlsSock = await nbdkit(['--tls=require', `--tls-psk=${pskFile}`, 'memory', '1M']);
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
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
    const [shortOurs, shortTheirs] = await Promise.all([runTool(OURS, ['--short-options']), runTool(THEIRS, ['--short-options'])]);
    expect(shortOurs).toEqual(shortTheirs);
    // libnbd 1.14's list in its order, with the options later libnbd added where it puts them.
    const [longOurs, longTheirs] = await Promise.all([runTool(OURS, ['--long-options']), runTool(THEIRS, ['--long-options'])]);
    expect(longOurs.code).toBe(0);
    const added = ['--cannot', '--has', '--hasnt', '--isnt', '--uri'];
    const ourLines = longOurs.stdout.trimEnd().split('\n');
    expect(ourLines.filter((l) => !added.includes(l)).join('\n') + '\n').toBe(longTheirs.stdout);
    expect(ourLines.filter((l) => added.includes(l)).sort()).toEqual(added);
  });
});
