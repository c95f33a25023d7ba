// libnbd's own tools (/usr/bin/nbdinfo, /usr/bin/nbdcopy, GnuTLS inside) against our embedded
// server with TLS: PSK and X.509 work and move the right bytes; bad credentials fail cleanly
// and the server keeps serving.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { startServer, fillPattern, type RunningServer } from '../src/server/index.js';
import type { ServerTlsOptions } from '../src/tls/types.js';
import { makeCaOnlyDir, makeTlsCredentials } from './helpers/tls-fixtures.js';
import { requireBinary } from './helpers/binaries.js';
import { removeDir } from './helpers/temp.js';

const tools = requireBinary('certtool') && requireBinary('psktool') && requireBinary('/usr/bin/nbdinfo') && requireBinary('/usr/bin/nbdcopy');

let root: string;
let serverDir: string;
let clientDir: string;
let caOnlyDir: string;
let wrongCaDir: string;
let psk: string;
let wrongPsk: string;
let servers: RunningServer[] = [];

beforeAll(() => {
  if (!tools) return;
  const creds = makeTlsCredentials();
  ({ root, serverDir, clientDir, wrongCaDir, psk, wrongPsk } = creds);
  caOnlyDir = makeCaOnlyDir(creds.ca, join(root, 'ca-only'));
});

afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

afterAll(() => removeDir(root));

let n = 0;
async function serve(tls: ServerTlsOptions, backend: string[] = ['pattern', '8M']): Promise<string> {
  const socket = join(root, `our${n++}.sock`);
  const s = await startServer({ backend, unixSocket: socket, tls });
  servers.push(s);
  return socket;
}

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      // A tool killed by the timeout (a hang) reports -1, so it can never pass as a clean refusal.
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const pskUri = (socket: string, file = psk, user = 'alice'): string =>
  `nbds+unix://${user}@/?socket=${encodeURIComponent(socket)}&tls-psk-file=${encodeURIComponent(file)}`;
const certUri = (socket: string, dir: string, extra = ''): string =>
  `nbds+unix:///?socket=${encodeURIComponent(socket)}&tls-certificates=${encodeURIComponent(dir)}${extra}`;

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function patternBytes(size: number): Buffer {
  const b = Buffer.alloc(size);
  fillPattern(b, 0);
  return b;
}

describe.skipIf(!tools)('libnbd tools against our server with TLS', () => {
  it('PSK: nbdinfo --json reports TLS and the size', async () => {
    const socket = await serve({ mode: 'require', pskFile: psk });
    const r = await run('/usr/bin/nbdinfo', ['--json', pskUri(socket)]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as { TLS: boolean; exports: { 'export-size': number }[] };
    expect(j.TLS).toBe(true);
    expect(j.exports[0]!['export-size']).toBe(8 * 1024 * 1024);
    expect((await run('/usr/bin/nbdinfo', ['--is', 'tls', pskUri(socket)])).code).toBe(0);
  });

  it('PSK: nbdcopy out of our server gives the exact pattern bytes', async () => {
    const socket = await serve({ mode: 'require', pskFile: psk });
    const out = join(root, 'out-psk.img');
    const r = await run('/usr/bin/nbdcopy', [pskUri(socket), out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(sha256(readFileSync(out))).toBe(sha256(patternBytes(8 * 1024 * 1024)));
  });

  it('PSK: nbdcopy into our server (memory) and back again', async () => {
    const socket = await serve({ mode: 'require', pskFile: psk }, ['memory', '4M']);
    const src = join(root, 'rand.img');
    const data = randomBytes(4 * 1024 * 1024);
    writeFileSync(src, data);
    expect((await run('/usr/bin/nbdcopy', [src, pskUri(socket)])).code).toBe(0);
    const back = join(root, 'back.img');
    expect((await run('/usr/bin/nbdcopy', [pskUri(socket), back])).code).toBe(0);
    expect(sha256(readFileSync(back))).toBe(sha256(data));
  });

  it('X.509: nbdinfo and nbdcopy with tls-certificates=', async () => {
    const socket = await serve({ mode: 'require', certificates: serverDir });
    const r = await run('/usr/bin/nbdinfo', ['--json', certUri(socket, clientDir)]);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout).TLS).toBe(true);
    const out = join(root, 'out-x509.img');
    expect((await run('/usr/bin/nbdcopy', [certUri(socket, clientDir), out])).code).toBe(0);
    expect(sha256(readFileSync(out))).toBe(sha256(patternBytes(8 * 1024 * 1024)));
  });

  it('X.509 with --tls-verify-peer: a client certificate from our CA is accepted, none is refused', async () => {
    const socket = await serve({ mode: 'require', certificates: serverDir, verifyPeer: true });
    const ok = await run('/usr/bin/nbdinfo', ['--size', certUri(socket, clientDir)]);
    expect(ok.stdout.trim()).toBe(String(8 * 1024 * 1024));
    const refused = await run('/usr/bin/nbdinfo', ['--size', certUri(socket, caOnlyDir)]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
  });

  it('wrong PSK key, wrong CA, plaintext: each fails, and the server keeps serving', async () => {
    const socket = await serve({ mode: 'require', pskFile: psk });
    const badKey = await run('/usr/bin/nbdinfo', ['--size', pskUri(socket, wrongPsk)]);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/nbdinfo: /);
    const plain = await run('/usr/bin/nbdinfo', ['--size', `nbd+unix:///?socket=${encodeURIComponent(socket)}`]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/TLS/i);
    const ok = await run('/usr/bin/nbdinfo', ['--size', pskUri(socket)]);
    expect(ok.stdout.trim()).toBe(String(8 * 1024 * 1024));

  });

  it('X.509 over TCP: wrong CA and wrong host name are refused by libnbd', async () => {
    // libnbd 1.14 checks the chain only when it has a host name, i.e. over TCP, so these go over TCP.
    const s = await startServer({ backend: ['pattern', '1M'], port: 0, host: '127.0.0.1', tls: { mode: 'require', certificates: serverDir } });
    servers.push(s);
    const uri = (host: string, dir: string): string =>
      `nbds://${host}:${s.port}/?tls-certificates=${encodeURIComponent(dir)}`;
    const ok = await run('/usr/bin/nbdinfo', ['--size', uri('localhost', caOnlyDir)]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe(String(1024 * 1024));
    const badCa = await run('/usr/bin/nbdinfo', ['--size', uri('localhost', wrongCaDir)]);
    expect(badCa.code).toBe(1);
    expect(badCa.stderr).toMatch(/nbdinfo: .*certificate verification/);
    const badHost = await run('/usr/bin/nbdinfo', ['--size', uri('127.0.0.1', caOnlyDir)]);
    expect(badHost.code).toBe(1);
    expect(badHost.stderr).toMatch(/nbdinfo: .*certificate verification/);
    if (process.env.TLS_TEST_LOG === '1') console.log(badCa.stderr, badHost.stderr);
  });

  it('--tls=on: plaintext and TLS clients are both served', async () => {
    const socket = await serve({ mode: 'on', pskFile: psk });
    const plain = await run('/usr/bin/nbdinfo', ['--json', `nbd+unix:///?socket=${encodeURIComponent(socket)}`]);
    expect(JSON.parse(plain.stdout).TLS).toBe(false);
    const secure = await run('/usr/bin/nbdinfo', ['--json', pskUri(socket)]);
    expect(JSON.parse(secure.stdout).TLS).toBe(true);
  });
});
