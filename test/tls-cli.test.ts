// Our nbdinfo and nbdcopy (bin/, built dist/) over TLS: same output as libnbd's nbdinfo,
// --is tls, copies between two TLS servers checksummed (one of 1 GiB), and one-line errors.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createReadStream, existsSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { startServer, fillPattern, type RunningServer as OurServer } from '../src/server/index.js';
import { connect } from '../src/client/index.js';
import { makeTlsCredentials, startNbdkit, type RunningServer } from './helpers/tls-fixtures.js';
import { requireBinary } from './helpers/binaries.js';
import { removeDir } from './helpers/temp.js';

const repo = resolve(import.meta.dirname, '..');
const ourNbdinfo = join(repo, 'bin', 'nbdinfo');
const ourNbdcopy = join(repo, 'bin', 'nbdcopy');
const built = existsSync(join(repo, 'dist', 'cli', 'nbdinfo.js')) && existsSync(join(repo, 'dist', 'cli', 'nbdcopy.js'));
if (!built) {
  if (process.env.CI === 'true') throw new Error('dist/ is not built: run npx tsc -p tsconfig.json first');
  console.warn('\n*** SKIPPING tls-cli: dist/ is not built (npx tsc -p tsconfig.json) ***\n');
}
const tools = built && requireBinary('certtool') && requireBinary('psktool') && requireBinary('nbdkit') && requireBinary('/usr/bin/nbdinfo');

const MiB = 1024 * 1024;
let root: string;
let serverDir: string;
let clientDir: string;
let wrongCaDir: string;
let psk: string;
let wrongPsk: string;
let kits: RunningServer[] = [];
let ours: OurServer[] = [];

beforeAll(() => {
  if (!tools) return;
  ({ root, serverDir, clientDir, wrongCaDir, psk, wrongPsk } = makeTlsCredentials());
});

afterEach(async () => {
  await Promise.all([...kits.map((s) => s.stop()), ...ours.map((s) => s.close())]);
  kits = [];
  ours = [];
});

afterAll(() => removeDir(root));

let n = 0;
async function nbdkit(args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(root, args, `k${n++}.sock`);
  kits.push(s);
  return s;
}

interface Run { code: number; stdout: string; stderr: string }
function run(cmd: string, args: string[], timeout = 60_000): Promise<Run> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout, maxBuffer: 16 << 20, env: { ...process.env, NBD_DEBUG: '' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

const q = encodeURIComponent;
const pskQuery = (file = psk): string => `tls-psk-file=${q(file)}`;

function expectOneLineError(r: Run, tool: string): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^${tool}: .+: .+`));
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 8 * MiB })) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sha256Pattern(size: number): string {
  const h = createHash('sha256');
  const chunk = Buffer.alloc(8 * MiB);
  for (let off = 0; off < size; off += chunk.length) {
    const b = chunk.subarray(0, Math.min(chunk.length, size - off));
    fillPattern(b, off);
    h.update(b);
  }
  return h.digest('hex');
}

describe.skipIf(!tools)('our nbdinfo over TLS', () => {
  it('PSK: text and JSON output identical to libnbd nbdinfo; --is tls', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const uri = s.uri('nbds+unix', pskQuery(), 'alice');
    for (const extra of [[], ['--json']]) {
      const theirs = await run('/usr/bin/nbdinfo', [...extra, uri]);
      const mine = await run(ourNbdinfo, [...extra, uri]);
      expect(mine.stderr).toBe('');
      expect(mine.stdout).toBe(theirs.stdout);
    }
    expect((await run(ourNbdinfo, ['--json', uri])).stdout).toMatch(/"TLS": true/);
    expect((await run(ourNbdinfo, [uri])).stdout).toMatch(/^protocol: newstyle-fixed with TLS/);
    expect((await run(ourNbdinfo, ['--is', 'tls', uri])).code).toBe(0);
  });

  it('X.509: identical to libnbd nbdinfo; --is tls false (2) on a plaintext connection', async () => {
    const s = await nbdkit(['--tls=on', `--tls-certificates=${serverDir}`, 'pattern', 'size=1M']);
    const uri = s.uri('nbds+unix', `tls-certificates=${q(clientDir)}`);
    const theirs = await run('/usr/bin/nbdinfo', ['--json', uri]);
    const mine = await run(ourNbdinfo, ['--json', uri]);
    expect(mine.stdout).toBe(theirs.stdout);
    expect((await run(ourNbdinfo, ['--is', 'tls', uri])).code).toBe(0);
    expect((await run(ourNbdinfo, ['--is', 'tls', s.uri('nbd+unix')])).code).toBe(2);
  });

  it('wrong key, wrong CA, plaintext-only server, missing PSK file: exit 1 with one line', async () => {
    const p = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const badKey = await run(ourNbdinfo, [p.uri('nbds+unix', pskQuery(wrongPsk), 'alice')]);
    expectOneLineError(badKey, 'nbdinfo');
    expect(badKey.stderr).toMatch(/PSK/);
    const noUser = await run(ourNbdinfo, [p.uri('nbds+unix', pskQuery(), 'mallory')]);
    expectOneLineError(noUser, 'nbdinfo');
    expect(noUser.stderr).toMatch(/no key for user 'mallory'/);
    const noFile = await run(ourNbdinfo, [p.uri('nbds+unix', pskQuery(join(root, 'nope.psk')), 'alice')]);
    expectOneLineError(noFile, 'nbdinfo');
    expect(noFile.stderr).toMatch(/no such file/);

    const x = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, 'pattern', 'size=1M']);
    const badCa = await run(ourNbdinfo, [x.uri('nbds+unix', `tls-certificates=${q(wrongCaDir)}`)]);
    expectOneLineError(badCa, 'nbdinfo');
    expect(badCa.stderr).toMatch(/server certificate is not trusted/);

    const plain = await nbdkit(['--tls=off', 'pattern', 'size=1M']);
    const refused = await run(ourNbdinfo, [plain.uri('nbds+unix', pskQuery(), 'alice')]);
    expectOneLineError(refused, 'nbdinfo');
    expect(refused.stderr).toMatch(/TLS/);
    if (process.env.TLS_TEST_LOG === '1') console.log([badKey, noUser, noFile, badCa, refused].map((r) => r.stderr).join(''));
  });
});

describe.skipIf(!tools)('our nbdinfo over TLS on TCP (host name checks)', () => {
  it('localhost matches the certificate; 127.0.0.1 (not in it) is refused; tls-verify-peer=false allows it', async () => {
    const s = await startServer({ backend: ['pattern', '1M'], port: 0, host: '127.0.0.1', tls: { mode: 'require', certificates: serverDir } });
    ours.push(s);
    const uri = (host: string, extra = ''): string => `nbds://${host}:${s.port}/?tls-certificates=${q(clientDir)}${extra}`;
    const ok = await run(ourNbdinfo, ['--size', uri('localhost')]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.trim()).toBe(String(MiB));
    const badHost = await run(ourNbdinfo, ['--size', uri('127.0.0.1')]);
    expectOneLineError(badHost, 'nbdinfo');
    expect(badHost.stderr).toMatch(/server certificate does not match the host name/);
    const unchecked = await run(ourNbdinfo, ['--size', uri('127.0.0.1', '&tls-verify-peer=false')]);
    expect(unchecked.stdout.trim()).toBe(String(MiB));
    const badCa = await run(ourNbdinfo, ['--size', `nbds://localhost:${s.port}/?tls-certificates=${q(wrongCaDir)}`]);
    expectOneLineError(badCa, 'nbdinfo');
    expect(badCa.stderr).toMatch(/server certificate is not trusted/);
  });
});

describe.skipIf(!tools)('our nbdcopy over TLS', () => {
  it('copies between two TLS servers (nbdkit PSK -> our server X.509 with client certificate), checksummed', async () => {
    const src = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=32M']);
    const dstSock = join(root, `dst${n++}.sock`);
    const dst = await startServer({
      backend: ['memory', '32M'], unixSocket: dstSock,
      tls: { mode: 'require', certificates: serverDir, verifyPeer: true },
    });
    ours.push(dst);
    const dstUri = `nbds+unix:///?socket=${q(dstSock)}&tls-certificates=${q(clientDir)}`;
    const r = await run(ourNbdcopy, [src.uri('nbds+unix', pskQuery(), 'alice'), dstUri]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Read the destination back over TLS with our client and compare with nbdkit's pattern.
    const c = await connect(dstUri, { uriAllowLocalFile: true });
    try {
      const h = createHash('sha256');
      const buf = Buffer.alloc(4 * MiB);
      for (let off = 0; off < 32 * MiB; off += buf.length) {
        await c.pread(buf, off);
        h.update(buf);
      }
      expect(h.digest('hex')).toBe(sha256Pattern(32 * MiB));
    } finally {
      await c.close();
    }
  });

  it('wrong key on the destination: exit 1, one line', async () => {
    const src = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const dst = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'memory', '1M']);
    const r = await run(ourNbdcopy, [src.uri('nbds+unix', pskQuery(), 'alice'), dst.uri('nbds+unix', pskQuery(wrongPsk), 'alice')]);
    expectOneLineError(r, 'nbdcopy');
    if (process.env.TLS_TEST_LOG === '1') console.log(r.stderr);
  });

  it('plaintext-only destination with nbds://: exit 1, one line, nothing copied in plaintext', async () => {
    const src = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const dst = await nbdkit(['--tls=off', 'memory', '1M']);
    const r = await run(ourNbdcopy, [src.uri('nbds+unix', pskQuery(), 'alice'), dst.uri('nbds+unix', pskQuery(), 'alice')]);
    expectOneLineError(r, 'nbdcopy');
    expect(r.stderr).toMatch(/TLS/);
  });

  it('1 GiB from nbdkit --tls=require (PSK) to a local file, sha256 equal to the pattern', async () => {
    const src = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1G']);
    const out = join(root, 'big.img');
    try {
      const r = await run(ourNbdcopy, [src.uri('nbds+unix', pskQuery(), 'alice'), out], 120_000);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(await sha256File(out)).toBe(sha256Pattern(1024 * MiB));
    } finally {
      rmSync(out, { force: true });
    }
  }, 120_000);
});
