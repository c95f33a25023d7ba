// The two STARTTLS upgrade functions against each other over a real Unix socket pair:
// PSK and X.509 success, and every way credentials can be wrong, each with a clear error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { copyFileSync, mkdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { upgradeClientTls } from '../src/tls/client.js';
import { loadServerTlsContext, upgradeServerTls } from '../src/tls/server.js';
import { tlsSessionInfo } from '../src/tls/session-info.js';
import { defaultClientCertDirs, defaultServerCertDirs, loadClientCertificates } from '../src/tls/cert-dir.js';
import { Duplex as DuplexStream } from 'node:stream';
import { lookupPskKey, parsePskFile } from '../src/tls/psk-file.js';
import type { ClientTlsOptions, ServerTlsOptions } from '../src/tls/types.js';
import { NbdError } from '../src/protocol/errors.js';
import { makeCa, makeClientCert, makePskFile, makeServerCert, unixSocketPair, type Ca } from './helpers/tls-fixtures.js';
import { requireBinary } from './helpers/binaries.js';
import { makeTempDir, removeDir } from './helpers/temp.js';

const tools = requireBinary('certtool') && requireBinary('psktool');

let root: string;
let ca: Ca;
let otherCa: Ca;
let serverDir: string; // localhost + 127.0.0.1
let clientDir: string; // ca + client identity
let caOnlyDir: string; // just the CA
let otherClientDir: string; // client identity from another CA, trusting the right CA
let wrongCaDir: string; // trusts another CA only
let psk: string;
let pskOtherKey: string;
let pair: Socket[] = [];

beforeAll(() => {
  if (!tools) return;
  root = makeTempDir();
  ca = makeCa(root, 'ca');
  otherCa = makeCa(root, 'other-ca');
  serverDir = makeServerCert(ca, join(root, 'server'), ['localhost', '127.0.0.1']);
  clientDir = makeClientCert(ca, join(root, 'client'));
  caOnlyDir = join(root, 'ca-only');
  mkdirSync(caOnlyDir);
  copyInto(ca.certPath, join(caOnlyDir, 'ca-cert.pem'));
  otherClientDir = join(root, 'other-client');
  makeClientCert(otherCa, otherClientDir);
  copyInto(ca.certPath, join(otherClientDir, 'ca-cert.pem'));
  wrongCaDir = join(root, 'wrong-ca');
  mkdirSync(wrongCaDir);
  copyInto(otherCa.certPath, join(wrongCaDir, 'ca-cert.pem'));
  psk = makePskFile(join(root, 'keys.psk'), 'alice').path;
  makePskFile(psk, 'bob');
  pskOtherKey = makePskFile(join(root, 'other.psk'), 'alice').path;
});

afterAll(() => {
  for (const s of pair) s.destroy();
  removeDir(root);
});

function copyInto(from: string, to: string): void {
  copyFileSync(from, to);
}

interface Outcome {
  client: Duplex | NbdError;
  server: Duplex | NbdError;
}

async function handshake(client: ClientTlsOptions, server: ServerTlsOptions): Promise<Outcome> {
  const [c, s] = await unixSocketPair(root, `p${pair.length}.sock`);
  pair.push(c, s);
  const settle = (p: Promise<Duplex>): Promise<Duplex | NbdError> =>
    p.then((d) => { pair.push(d as Socket); return d; }, (e: unknown) => {
      if (!(e instanceof NbdError)) throw e;
      return e;
    });
  const [cr, sr] = await Promise.all([settle(upgradeServerTls(s, server)).then((x) => x), settle(upgradeClientTls(c, client))])
    .then(([srv, cli]) => [cli, srv] as const);
  return { client: cr, server: sr };
}

async function roundTrip(a: Duplex, b: Duplex): Promise<void> {
  const payload = Buffer.alloc(200_000, 0x5a);
  payload.write('hello over tls');
  const got: Buffer[] = [];
  let n = 0;
  const done = new Promise<void>((resolve) => {
    b.on('data', (chunk: Buffer) => {
      got.push(chunk);
      n += chunk.length;
      if (n >= payload.length) resolve();
    });
  });
  a.write(payload);
  await done;
  expect(Buffer.concat(got).equals(payload)).toBe(true);
}

function expectOk(d: Duplex | NbdError): Duplex {
  if (d instanceof NbdError) throw new Error(`expected success, got ${d.code}: ${d.message}`);
  return d;
}
function expectErr(d: Duplex | NbdError): NbdError {
  if (process.env.TLS_TEST_LOG === '1' && d instanceof NbdError) console.log(`${d.code}: ${d.message}`);
  if (!(d instanceof NbdError)) throw new Error('expected an error, the handshake succeeded');
  return d;
}

describe.skipIf(!tools)('TLS upgrade functions over a Unix socket pair', () => {
  it('PSK: handshake, data both ways, TLS 1.2 PSK cipher', async () => {
    const r = await handshake(
      { mode: 'require', pskFile: psk, username: 'alice' },
      { mode: 'require', pskFile: psk },
    );
    const c = expectOk(r.client);
    const s = expectOk(r.server);
    await roundTrip(c, s);
    await roundTrip(s, c);
    const info = tlsSessionInfo(c);
    expect(info?.protocol).toBe('TLSv1.2');
    expect(info?.auth).toBe('psk');
    expect(info?.cipher).toMatch(/PSK/);
  });

  it('PSK: a second user in the same file works', async () => {
    const r = await handshake({ mode: 'require', pskFile: psk, username: 'bob' }, { mode: 'require', pskFile: psk });
    await roundTrip(expectOk(r.client), expectOk(r.server));
  });

  it('PSK: wrong key fails on both sides with a clear error', async () => {
    const r = await handshake(
      { mode: 'require', pskFile: pskOtherKey, username: 'alice' },
      { mode: 'require', pskFile: psk },
    );
    const ce = expectErr(r.client);
    const se = expectErr(r.server);
    expect(ce.message).toMatch(/^TLS: /);
    expect(ce.message).toMatch(/PSK authentication failed|closed the connection/);
    expect(se.message).toMatch(/PSK authentication failed|closed the connection/);
  });

  it('PSK: user unknown to the server fails', async () => {
    const r = await handshake(
      { mode: 'require', pskFile: psk, username: 'bob' },
      { mode: 'require', pskFile: pskOtherKey },
    );
    expect(expectErr(r.client).message).toMatch(/^TLS: /);
    expect(expectErr(r.server).message).toMatch(/^TLS: /);
  });

  it('PSK: user missing from the client key file fails before the handshake', async () => {
    const [c, s] = await unixSocketPair(root, 'nouser.sock');
    pair.push(c, s);
    const err = await upgradeClientTls(c, { mode: 'require', pskFile: psk, username: 'mallory' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NbdError);
    expect((err as NbdError).code).toBe('EACCES');
    expect((err as NbdError).message).toBe(`${psk}: no key for user 'mallory' in the PSK file`);
    expect(c.destroyed).toBe(true);
  });

  it('X.509: verified chain and host name localhost', async () => {
    const r = await handshake(
      { mode: 'require', certificates: caOnlyDir, hostname: 'localhost' },
      { mode: 'require', certificates: serverDir },
    );
    const c = expectOk(r.client);
    await roundTrip(c, expectOk(r.server));
    expect(tlsSessionInfo(c)?.auth).toBe('x509');
  });

  it('X.509: IP address host name matched against ip_address', async () => {
    const r = await handshake(
      { mode: 'require', certificates: caOnlyDir, hostname: '127.0.0.1' },
      { mode: 'require', certificates: serverDir },
    );
    await roundTrip(expectOk(r.client), expectOk(r.server));
  });

  it('X.509: no host name (Unix socket) verifies the chain only', async () => {
    const r = await handshake({ mode: 'require', certificates: caOnlyDir }, { mode: 'require', certificates: serverDir });
    expectOk(r.client);
    const bad = await handshake({ mode: 'require', certificates: wrongCaDir }, { mode: 'require', certificates: serverDir });
    expect(expectErr(bad.client).message).toMatch(/server certificate is not trusted/);
  });

  it('X.509: wrong CA is rejected by the client', async () => {
    const r = await handshake(
      { mode: 'require', certificates: wrongCaDir, hostname: 'localhost' },
      { mode: 'require', certificates: serverDir },
    );
    const e = expectErr(r.client);
    expect(e.code).toBe('EACCES');
    expect(e.message).toMatch(/^TLS: server certificate is not trusted/);
    expectErr(r.server);
  });

  it('X.509: wrong host name is rejected by the client', async () => {
    const r = await handshake(
      { mode: 'require', certificates: caOnlyDir, hostname: 'nbd.example.com' },
      { mode: 'require', certificates: serverDir },
    );
    const e = expectErr(r.client);
    expect(e.code).toBe('EACCES');
    expect(e.message).toMatch(/^TLS: server certificate does not match the host name: .*nbd\.example\.com/);
  });

  it('X.509: verifyPeer=false accepts an untrusted server', async () => {
    const r = await handshake(
      { mode: 'require', certificates: wrongCaDir, hostname: 'nbd.example.com', verifyPeer: false },
      { mode: 'require', certificates: serverDir },
    );
    await roundTrip(expectOk(r.client), expectOk(r.server));
  });

  it('X.509 server --tls-verify-peer: accepts a client certificate from its CA', async () => {
    const r = await handshake(
      { mode: 'require', certificates: clientDir, hostname: 'localhost' },
      { mode: 'require', certificates: serverDir, verifyPeer: true },
    );
    await roundTrip(expectOk(r.client), expectOk(r.server));
  });

  it('X.509 server --tls-verify-peer: rejects a client without certificate or from another CA', async () => {
    const none = await handshake(
      { mode: 'require', certificates: caOnlyDir, hostname: 'localhost' },
      { mode: 'require', certificates: serverDir, verifyPeer: true },
    );
    const e1 = expectErr(none.server);
    expect(e1.code).toBe('EACCES');
    expect(e1.message).toMatch(/^TLS: client certificate rejected/);
    const other = await handshake(
      { mode: 'require', certificates: otherClientDir, hostname: 'localhost' },
      { mode: 'require', certificates: serverDir, verifyPeer: true },
    );
    expect(expectErr(other.server).message).toMatch(/^TLS: client certificate rejected/);
  });

  it('PSK client against an X.509 server: no common cipher, clear error', async () => {
    const r = await handshake(
      { mode: 'require', pskFile: psk, username: 'alice' },
      { mode: 'require', certificates: serverDir },
    );
    expect(expectErr(r.client).message).toMatch(/^TLS: /);
    expect(expectErr(r.server).message).toMatch(/^TLS: /);
  });

  it('a peer that never answers the handshake times out', async () => {
    const [c, s] = await unixSocketPair(root, 'silent.sock');
    pair.push(c, s);
    const err = await upgradeClientTls(c, { mode: 'require', pskFile: psk, username: 'alice', handshakeTimeoutMs: 300 })
      .catch((e: unknown) => e);
    expect((err as NbdError).code).toBe('ETIMEDOUT');
    expect(c.destroyed).toBe(true);
  });

  it('a client that never starts the handshake times out on the server', async () => {
    const [c, s] = await unixSocketPair(root, 'silent-client.sock');
    pair.push(c, s);
    const err = await upgradeServerTls(s, { mode: 'require', pskFile: psk, handshakeTimeoutMs: 300 }).catch((e: unknown) => e);
    expect((err as NbdError).code).toBe('ETIMEDOUT');
    expect((err as NbdError).message).toBe('TLS: handshake did not finish within 300 ms');
  });

  it('a peer that hangs up mid-handshake gives ECONNRESET, not a hang', async () => {
    const [c, s] = await unixSocketPair(root, 'hangup.sock');
    pair.push(c, s);
    s.once('data', () => s.destroy());
    const err = await upgradeClientTls(c, { mode: 'require', certificates: caOnlyDir }).catch((e: unknown) => e);
    expect((err as NbdError).code).toBe('ECONNRESET');
  });
});

/** Two in-memory Duplex ends joined back to back: not net.Sockets, so TLS goes through JS streams. */
function memoryPair(): [DuplexStream, DuplexStream] {
  let a!: DuplexStream;
  let b!: DuplexStream;
  const make = (peer: () => DuplexStream): DuplexStream => new DuplexStream({
    read() {},
    write(chunk: Buffer, _enc, cb) { peer().push(chunk); cb(); },
    final(cb) { peer().push(null); cb(); },
  });
  a = make(() => b);
  b = make(() => a);
  return [a, b];
}

describe.skipIf(!tools)('TLS upgrade over plain Duplex streams', () => {
  it('PSK and X.509 work over streams that are not sockets', async () => {
    for (const [client, server] of [
      [{ mode: 'require', pskFile: psk, username: 'alice' }, { mode: 'require', pskFile: psk }],
      [{ mode: 'require', certificates: caOnlyDir, hostname: 'localhost' }, { mode: 'require', certificates: serverDir }],
    ] as [ClientTlsOptions, ServerTlsOptions][]) {
      const [c, s] = memoryPair();
      const [sc, cc] = await Promise.all([upgradeServerTls(s, server), upgradeClientTls(c, client)]);
      await roundTrip(cc, sc);
      await roundTrip(sc, cc);
      cc.destroy();
      sc.destroy();
    }
  });
});

describe.skipIf(!tools)('TLS credential loading', () => {
  it('default certificate directories follow libnbd and nbdkit', () => {
    if (process.getuid?.() === 0) {
      expect(defaultClientCertDirs()).toEqual(['/etc/pki/libnbd']);
      expect(defaultServerCertDirs()).toEqual(['/etc/pki/nbdkit']);
    } else {
      const home = process.env.HOME!;
      expect(defaultClientCertDirs()).toEqual([join(home, '.pki', 'libnbd'), join(home, '.config', 'pki', 'libnbd')]);
      expect(defaultServerCertDirs()).toEqual([join(home, '.pki', 'nbdkit'), join(home, '.config', 'pki', 'nbdkit')]);
    }
  });

  it('server: missing certificate directory and files are clear start-up errors', () => {
    expect(() => loadServerTlsContext({ mode: 'require', certificates: join(root, 'nope') }))
      .toThrow(`TLS certificates directory ${join(root, 'nope')}: no such directory`);
    expect(() => loadServerTlsContext({ mode: 'require', certificates: caOnlyDir }))
      .toThrow(`TLS certificate file ${join(caOnlyDir, 'server-cert.pem')}: no such file`);
    expect(() => loadServerTlsContext({ mode: 'on', pskFile: join(root, 'missing.psk') }))
      .toThrow(`PSK file ${join(root, 'missing.psk')}: no such file`);
    expect(loadServerTlsContext({ mode: 'off' })).toBeUndefined();
    expect(loadServerTlsContext({ mode: 'require', certificates: serverDir })?.auth).toBe('x509');
    expect(loadServerTlsContext({ mode: 'require', certificates: serverDir, pskFile: psk })?.auth).toBe('psk');
  });

  it('server: a key that does not match the certificate stops start-up', () => {
    const dir = join(root, 'mismatch');
    mkdirSync(dir);
    copyInto(join(serverDir, 'server-cert.pem'), join(dir, 'server-cert.pem'));
    copyInto(join(clientDir, 'client-key.pem'), join(dir, 'server-key.pem'));
    expect(() => loadServerTlsContext({ mode: 'require', certificates: dir })).toThrow(/^TLS certificates directory .*mismatch: /);
  });

  it('client: certificate directory layout and half identities', () => {
    const full = loadClientCertificates(clientDir);
    expect(full.ca && full.cert && full.key).toBeTruthy();
    const caOnly = loadClientCertificates(caOnlyDir);
    expect(caOnly.cert).toBeUndefined();
    const half = join(root, 'half');
    mkdirSync(half);
    copyInto(join(clientDir, 'client-cert.pem'), join(half, 'client-cert.pem'));
    expect(() => loadClientCertificates(half)).toThrow(/client-key\.pem is missing/);
    expect(() => loadClientCertificates(join(root, 'nope'))).toThrow(/no such directory/);
  });

  it('PSK files: psktool format, bad lines, missing users', () => {
    const t = parsePskFile('alice:00ff10\n\n# c\nbob:abcd\n', 'f.psk');
    expect(t.get('alice')).toEqual(Buffer.from([0, 255, 16]));
    expect(t.get('bob')).toEqual(Buffer.from([0xab, 0xcd]));
    expect(() => parsePskFile('alice\n', 'f.psk')).toThrow("f.psk:1: expected 'username:hexkey'");
    expect(() => parsePskFile('alice:xyz\n', 'f.psk')).toThrow(/f\.psk:1: key for 'alice' is not/);
    expect(() => parsePskFile('\n', 'f.psk')).toThrow('f.psk: PSK file has no keys');
    expect(lookupPskKey(psk, 'alice').length).toBeGreaterThan(0);
    expect(() => lookupPskKey(psk, 'carol')).toThrow(`${psk}: no key for user 'carol' in the PSK file`);
  });
});
