// TLS credentials are checked when the server starts, not when the first client asks for TLS:
// missing files stop nbdserve (one line, exit 1, no socket left behind) and make startServer
// reject; --tls=on with no credentials at all warns and serves plaintext only, as nbdkit does.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, type NbdClient } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { startServer } from '../src/server/index.js';
import { canConnectUnix } from './helpers/servers.js';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { makeTempDir, removeDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();

function tempDir(): string {
  const dir = makeTempDir('server-tls-startup-');
  cleanups.push(() => removeDir(dir));
  return dir;
}

// Without --tls-certificates the server looks in nbdkit's default directories: /etc/pki/nbdkit
// for root, under $HOME otherwise (HOME points at an empty temp dir in these runs).
const rootDefaultDirExists = process.getuid?.() === 0 && existsSync('/etc/pki/nbdkit');
if (rootDefaultDirExists) console.warn('server-tls-startup: /etc/pki/nbdkit exists, skipping the no-credentials cases');

interface Spawned {
  exited: Promise<{ code: number | null; stderr: string }>;
  stderr(): string;
  kill(): Promise<void>;
}

/** bin/nbdserve with a private HOME and TMPDIR (so `-U -` and default cert dirs stay in `dir`). */
function nbdserve(dir: string, args: string[]): Spawned {
  ensureBuilt();
  const home = join(dir, 'home');
  const tmp = join(dir, 'tmp');
  mkdirSync(home, { recursive: true });
  mkdirSync(tmp, { recursive: true });
  const child = spawn(process.execPath, [NBDSERVE, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, HOME: home, TMPDIR: tmp, NBD_DEBUG: '' },
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => { stderr += d; });
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.once('close', (code) => resolve({ code, stderr }));
  });
  const kill = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
  cleanups.push(kill);
  return { exited, stderr: () => stderr, kill };
}

/** Runs a start-up that must fail: exit status 1, exactly one `nbdserve: ` line, no socket. */
async function expectStartupFailure(args: string[]): Promise<string> {
  const dir = tempDir();
  const socket = join(dir, 'sock');
  const { code, stderr } = await nbdserve(dir, ['-U', socket, ...args]).exited;
  expect(code).toBe(1);
  const lines = stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^nbdserve: /);
  expect(existsSync(socket)).toBe(false);
  // `-U -` would have made a private directory under TMPDIR: none may be left either.
  const { code: code2 } = await nbdserve(dir, ['-U', '-', ...args]).exited;
  expect(code2).toBe(1);
  expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  return lines[0]!;
}

async function waitForSocket(path: string, proc: Spawned): Promise<void> {
  const deadline = Date.now() + 20_000;
  let exited = false;
  void proc.exited.then(() => { exited = true; });
  // The socket file exists a moment before the server listens: only a connect proves it does.
  while (!(await canConnectUnix(path))) {
    if (exited) throw new Error(`nbdserve exited: ${proc.stderr().trim()}`);
    if (Date.now() > deadline) throw new Error(`nbdserve did not listen: ${proc.stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('nbdserve: TLS credentials checked at start-up', () => {
  it('--tls=require with a missing PSK file: exit 1, one line naming the file', async () => {
    const line = await expectStartupFailure(['--tls=require', '--tls-psk', '/nonexistent/keys.psk', 'memory', '1M']);
    expect(line).toBe('nbdserve: error: --tls=require: PSK file /nonexistent/keys.psk: no such file');
  });

  it('--tls=on with a missing PSK file: also an error (an explicit file must load)', async () => {
    const line = await expectStartupFailure(['--tls=on', '--tls-psk', '/nonexistent/keys.psk', 'memory', '1M']);
    expect(line).toBe('nbdserve: error: --tls=on: PSK file /nonexistent/keys.psk: no such file');
  });

  it('--tls=require with a missing certificates directory: exit 1, one line naming it', async () => {
    const line = await expectStartupFailure(['--tls=require', '--tls-certificates', '/nonexistent/pki', 'memory', '1M']);
    expect(line).toBe('nbdserve: error: --tls=require: TLS certificates directory /nonexistent/pki: no such directory');
  });

  it('--tls=require with a certificates directory lacking server-cert.pem: exit 1', async () => {
    const empty = tempDir();
    const line = await expectStartupFailure(['--tls=require', '--tls-certificates', empty, 'memory', '1M']);
    expect(line).toBe(`nbdserve: error: --tls=require: TLS certificate file ${join(empty, 'server-cert.pem')}: no such file`);
  });

  it.skipIf(rootDefaultDirExists)('--tls=require without any credentials: exit 1, one line', async () => {
    const line = await expectStartupFailure(['--tls=require', 'memory', '1M']);
    expect(line).toMatch(/^nbdserve: error: --tls=require: no TLS certificates: give a certificates directory or a PSK file \(looked in .+\)$/);
  });

  it.skipIf(rootDefaultDirExists)('--tls=on without any credentials: one warning, then plaintext service with STARTTLS refused', async () => {
    const dir = tempDir();
    const socket = join(dir, 'sock');
    const proc = nbdserve(dir, ['-U', socket, '--tls=on', 'memory', '1M']);
    await waitForSocket(socket, proc);
    const plain: NbdClient = await connect({ unixSocket: socket });
    cleanups.push(() => plain.close().catch(() => {}));
    expect(plain.connection.tls).toBe(false);
    expect(plain.export.size).toBe(1024 * 1024);
    const data = Buffer.alloc(4096, 0x5a);
    await plain.pwrite(data, 8192);
    const back = Buffer.alloc(4096);
    await plain.pread(back, 8192);
    expect(back.equals(data)).toBe(true);
    // TLS really is off: a client that requires it is turned away.
    const pskFile = join(dir, 'keys.psk');
    writeFileSync(pskFile, `alice:${'ab'.repeat(32)}\n`);
    const refused = await connect({ unixSocket: socket }, { tls: { mode: 'require', pskFile, username: 'alice' } })
      .then((c) => { cleanups.push(() => c.close().catch(() => {})); return undefined; }, (e: unknown) => e);
    expect(refused).toBeInstanceOf(NbdError);
    expect((refused as Error).message).toMatch(/server refused TLS|TLS.*(not supported|unsupported|refused)/i);
    const lines = proc.stderr().split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^nbdserve: warning: --tls=on but no TLS certificates: .*TLS is disabled/);
    await proc.kill();
    expect(existsSync(socket)).toBe(false);
  });
});

describe('startServer: TLS credentials checked before listening', () => {
  it('rejects with NbdError ENOENT for a missing PSK file and creates no socket', async () => {
    const dir = tempDir();
    const socket = join(dir, 'sock');
    const err = await startServer({ backend: ['memory', '1M'], unixSocket: socket, tls: { mode: 'require', pskFile: join(dir, 'missing.psk') } })
      .then(async (s) => { await s.close(); return undefined; }, (e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).code).toBe('ENOENT');
    expect((err as NbdError).message).toBe(`--tls=require: PSK file ${join(dir, 'missing.psk')}: no such file`);
    expect(existsSync(socket)).toBe(false);
  });

  it.skipIf(rootDefaultDirExists)("mode 'on' without credentials: warns once and reports tlsMode 'off'", async () => {
    const dir = tempDir();
    const savedHome = process.env.HOME;
    process.env.HOME = dir;
    const warnings: string[] = [];
    try {
      const s = await startServer({ backend: ['memory', '1M'], unixSocket: join(dir, 'sock'), tls: { mode: 'on' }, warn: (m) => warnings.push(m) });
      cleanups.push(() => s.close());
      expect(s.tlsMode).toBe('off');
      expect(s.uri.startsWith('nbd+unix:')).toBe(true);
    } finally {
      process.env.HOME = savedHome;
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^--tls=on but no TLS certificates/);
  });
});
