// Our client library against nbdkit --tls=require (GnuTLS on the other side): PSK and X.509
// succeed and read the right bytes; wrong key, wrong CA, plaintext-only servers fail clearly.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { connect } from '../src/client/index.js';
import type { NbdClient } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { makeCaOnlyDir, makeClientCert, makeTlsCredentials, startNbdkit, type RunningServer } from './helpers/tls-fixtures.js';
import { requireBinary } from './helpers/binaries.js';
import { removeDir } from './helpers/temp.js';

const tools = requireBinary('certtool') && requireBinary('psktool') && requireBinary('nbdkit');

let root: string;
let serverDir: string;
let clientDir: string;
let wrongCaDir: string;
let foreignClientDir: string;
let psk: string;
let wrongPsk: string;
let servers: RunningServer[] = [];
let clients: NbdClient[] = [];

beforeAll(() => {
  if (!tools) return;
  const creds = makeTlsCredentials();
  ({ root, serverDir, clientDir, wrongCaDir, psk, wrongPsk } = creds);
  // Trusts the server's CA, but its own certificate comes from the other one.
  foreignClientDir = makeClientCert(creds.otherCa, makeCaOnlyDir(creds.ca, join(root, 'foreign')));
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  clients = [];
  await Promise.all(servers.map((s) => s.stop()));
  servers = [];
});

afterAll(() => removeDir(root));

async function nbdkit(args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(root, args, `k${Date.now()}-${servers.length}.sock`);
  servers.push(s);
  return s;
}

// The URIs here name PSK files and certificate directories: allowed, as our tools allow them.
const LOCAL_FILES = { uriAllowLocalFile: true };

async function open(uri: string): Promise<NbdClient> {
  const c = await connect(uri, LOCAL_FILES);
  clients.push(c);
  return c;
}

/** nbdkit's pattern plugin: every 8 bytes hold their own offset, big-endian. */
function expectPattern(buf: Buffer, offset: number): void {
  for (let i = 0; i < buf.length; i += 8) {
    expect(buf.readBigUInt64BE(i)).toBe(BigInt(offset + i));
  }
}

async function failure(uri: string): Promise<NbdError> {
  const err = await connect(uri, LOCAL_FILES).then(
    (c) => { clients.push(c); throw new Error('connected, expected a failure'); },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NbdError);
  if (process.env.TLS_TEST_LOG === '1') console.log(`${(err as NbdError).code}: ${(err as NbdError).message}`);
  return err as NbdError;
}

describe.skipIf(!tools)('our client against nbdkit --tls=require', () => {
  it('PSK: nbds+unix://alice@/?tls-psk-file= reads the pattern', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=4M']);
    const c = await open(s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(psk)}`, 'alice'));
    expect(c.connection.tls).toBe(true);
    expect(c.export.size).toBe(4 * 1024 * 1024);
    const buf = Buffer.alloc(1024 * 1024);
    await c.pread(buf, 3 * 1024 * 1024);
    expectPattern(buf, 3 * 1024 * 1024);
  });

  it('PSK: writes and reads back through the memory plugin', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'memory', '8M']);
    const c = await open(s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(psk)}&tls-username=alice`));
    const data = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    await c.pwrite(data, 1024 * 1024);
    await c.flush();
    const back = Buffer.alloc(data.length);
    await c.pread(back, 1024 * 1024);
    expect(back.equals(data)).toBe(true);
  });

  it('X.509: tls-certificates= verifies nbdkit against our CA', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, 'pattern', 'size=1M']);
    const c = await open(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(clientDir)}`));
    expect(c.connection.tls).toBe(true);
    const buf = Buffer.alloc(65536);
    await c.pread(buf, 65536);
    expectPattern(buf, 65536);
  });

  it('X.509: nbdkit --tls-verify-peer accepts our client certificate', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, '--tls-verify-peer', 'pattern', 'size=1M']);
    const c = await open(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(clientDir)}`));
    const buf = Buffer.alloc(4096);
    await c.pread(buf, 0);
    expectPattern(buf, 0);
  });

  it('wrong PSK key: clear error', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(wrongPsk)}`, 'alice'));
    expect(e.message).toMatch(/^TLS: (PSK authentication failed|server closed the connection during the handshake \(wrong PSK key)/);
  });

  it('user missing from the PSK file: clear error', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(psk)}`, 'mallory'));
    expect(e.message).toBe(`${psk}: no key for user 'mallory' in the PSK file`);
  });

  it('wrong CA: clear error', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(wrongCaDir)}`));
    expect(e.code).toBe('EACCES');
    expect(e.message).toMatch(/^TLS: server certificate is not trusted/);
  });

  it('wrong CA but tls-verify-peer=false: connects', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, 'pattern', 'size=1M']);
    const c = await open(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(wrongCaDir)}&tls-verify-peer=false`));
    expect(c.connection.tls).toBe(true);
  });

  it('nbdkit --tls-verify-peer without a client certificate: clear error, never hangs', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, '--tls-verify-peer', 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(wrongCaDir)}&tls-verify-peer=false`));
    // TLS 1.3: the server judges our (empty) certificate after our last handshake message, so
    // its refusal is a hang-up on what already looked like a finished handshake.
    expect(e.code).toBe('ECONNRESET');
    expect(e.message).toBe('TLS: the server closed the connection right after the TLS handshake: it may require a client certificate');
  });

  it('nbdkit --tls-verify-peer with a client certificate from another CA: clear error', async () => {
    const s = await nbdkit(['--tls=require', `--tls-certificates=${serverDir}`, '--tls-verify-peer', 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-certificates=${encodeURIComponent(foreignClientDir)}`));
    expect(e.code).toBe('ECONNRESET');
    expect(e.message).toBe('TLS: the server closed the connection right after the TLS handshake: it may have rejected our client certificate');
  });

  it('plaintext-only server with nbds://: error, never a silent plaintext connection', async () => {
    const s = await nbdkit(['--tls=off', 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(psk)}`, 'alice'));
    expect(e.message).toMatch(/TLS/);
  });

  it('TLS mode allow against a plaintext-only server falls back to plaintext', async () => {
    const s = await nbdkit(['--tls=off', 'pattern', 'size=1M']);
    const c = await connect(s.uri('nbd+unix'), { tls: { mode: 'allow', pskFile: psk, username: 'alice' } });
    clients.push(c);
    expect(c.connection.tls).toBe(false);
  });

  it('plain nbd:// against --tls=require: error naming TLS', async () => {
    const s = await nbdkit(['--tls=require', `--tls-psk=${psk}`, 'pattern', 'size=1M']);
    const e = await failure(s.uri('nbd+unix'));
    expect(e.message).toMatch(/TLS/);
  });
});
