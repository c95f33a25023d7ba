// libnbd's URI allow-lists as options of parseNbdUri() and connect(): which transports a URI
// may use, whether it may (or must) ask for TLS, and whether it may name local files. A
// refused URI is one NbdError EPERM, and connect() opens no socket and reads no file for it.
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { MultiConn, TOOL_URI_ALLOW_LIST, connect, parseNbdUri, type UriAllowList } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { startServer } from '../src/server/index.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDINFO, ensureBuilt } from './helpers/build.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { startRecordingServer } from './helpers/wire.js';

const t = teardownAfterEach();

function refused(f: () => unknown): NbdError {
  try {
    f();
  } catch (err) {
    if (err instanceof NbdError) return err;
    throw err;
  }
  throw new Error('expected the URI to be refused');
}

describe('parseNbdUri allow-lists', () => {
  it('defaults (libnbd\'s): every transport, TLS or not, no local files', () => {
    for (const uri of ['nbd://h/', 'nbds://h/', 'nbd+unix:///?socket=/s', 'nbds+unix:///?socket=/s', 'nbd+vsock://2/']) {
      expect(() => parseNbdUri(uri)).not.toThrow();
    }
    const psk = refused(() => parseNbdUri('nbds://h/?tls-psk-file=/etc/keys.psk'));
    expect(psk.code).toBe('EPERM');
    expect(psk.message).toBe("NBD URI 'nbds://h/?tls-psk-file=/etc/keys.psk': local file access (tls-psk-file=) is not allowed (uriAllowLocalFile)");
    expect(refused(() => parseNbdUri('nbds+unix:///?socket=/s&tls-certificates=/etc/pki')).code).toBe('EPERM');
    // socket= is governed by the transports, as in libnbd: it is how +unix URIs work at all.
    expect(parseNbdUri('nbd+unix:///?socket=/s').socket).toBe('/s');
  });

  it('uriAllowLocalFile: true lets tls-psk-file= and tls-certificates= through', () => {
    const u = parseNbdUri('nbds://h/?tls-psk-file=/k&tls-certificates=/c', { uriAllowLocalFile: true });
    expect([u.tlsPskFile, u.tlsCertificates]).toEqual(['/k', '/c']);
    expect(parseNbdUri('nbds://h/?tls-psk-file=/k', TOOL_URI_ALLOW_LIST).tlsPskFile).toBe('/k');
  });

  it.each([
    [['tcp'], 'nbd://h/', ['nbd+unix:///?socket=/s', 'nbds+unix:///?socket=/s', 'nbd+vsock://2/']],
    [['unix'], 'nbd+unix:///?socket=/s', ['nbd://h/', 'nbds://h/', 'nbd+vsock://2/']],
    [['vsock', 'tcp'], 'nbd+vsock://2/', ['nbd+unix:///?socket=/s']],
    [[], undefined, ['nbd://h/', 'nbd+unix:///?socket=/s', 'nbd+vsock://2/']],
  ] as const)('uriAllowTransports %j', (transports, ok, refusedUris) => {
    const allow: UriAllowList = { uriAllowTransports: transports };
    if (ok !== undefined) expect(() => parseNbdUri(ok, allow)).not.toThrow();
    for (const uri of refusedUris) {
      const e = refused(() => parseNbdUri(uri, allow));
      expect(e.code).toBe('EPERM');
      expect(e.message).toMatch(/transport is not allowed \(uriAllowTransports\)$/);
    }
  });

  it('uriAllowTls: off refuses nbds URIs, require refuses nbd ones, allow takes both', () => {
    expect(refused(() => parseNbdUri('nbds://h/', { uriAllowTls: 'off' })).code).toBe('EPERM');
    expect(refused(() => parseNbdUri('nbds+unix:///?socket=/s', { uriAllowTls: 'off' })).code).toBe('EPERM');
    expect(parseNbdUri('nbd://h/', { uriAllowTls: 'off' }).tls).toBe(false);
    expect(refused(() => parseNbdUri('nbd://h/', { uriAllowTls: 'require' })).code).toBe('EPERM');
    expect(refused(() => parseNbdUri('nbd+unix:///?socket=/s', { uriAllowTls: 'require' })).message).toMatch(/only TLS URIs/);
    expect(parseNbdUri('nbds://h/', { uriAllowTls: 'require' }).tls).toBe(true);
    expect(parseNbdUri('nbd://h/', { uriAllowTls: 'allow' }).tls).toBe(false);
  });

  it('a malformed URI is still EINVAL, and bad allow-list values are EINVAL', () => {
    expect(refused(() => parseNbdUri('nbd+unix:///', { uriAllowTransports: ['unix'] })).code).toBe('EINVAL');
    expect(refused(() => parseNbdUri('nbd://h/', { uriAllowTransports: ['tcp', 'udp' as 'tcp'] })).code).toBe('EINVAL');
    expect(refused(() => parseNbdUri('nbd://h/', { uriAllowTransports: 'tcp' as unknown as ['tcp'] })).code).toBe('EINVAL');
    expect(refused(() => parseNbdUri('nbd://h/', { uriAllowTls: 'maybe' as 'allow' })).code).toBe('EINVAL');
  });
});

describe('connect() allow-lists: a refused URI opens no socket and reads no file', () => {
  /** A listening socket that counts connections; connect() must never reach it. */
  async function listener(): Promise<{ socket: string; accepted: () => number }> {
    const srv = await startRecordingServer(async (peer) => { peer.destroy(); });
    t.push(() => srv.stop());
    return { socket: srv.socket, accepted: () => srv.accepted };
  }

  it.each([
    ['a PSK file, by default', (s: string) => `nbds+unix:///?socket=${s}&tls-psk-file=/nonexistent/keys.psk`, {}],
    ['a certificate directory, by default', (s: string) => `nbds+unix:///?socket=${s}&tls-certificates=/nonexistent/pki`, {}],
    ['a Unix socket, with transports [tcp]', (s: string) => `nbd+unix:///?socket=${s}`, { uriAllowTransports: ['tcp'] }],
    ['TLS, with uriAllowTls off', (s: string) => `nbds+unix:///?socket=${s}`, { uriAllowTls: 'off' }],
    ['no TLS, with uriAllowTls require', (s: string) => `nbd+unix:///?socket=${s}`, { uriAllowTls: 'require' }],
  ] as const)('%s: EPERM, nothing connected', async (_what, uriFor, allow) => {
    const l = await listener();
    const uri = uriFor(l.socket);
    // The PSK file does not exist: had it been read, the error would be ENOENT.
    await expect(connect(uri, allow)).rejects.toMatchObject({ name: 'NbdError', code: 'EPERM' });
    await expect(connect(uri, { ...allow, retries: 3, retryDelayMs: 10 })).rejects.toMatchObject({ code: 'EPERM' });
    await expect(MultiConn.open(uri, allow)).rejects.toMatchObject({ code: 'EPERM' });
    expect(l.accepted()).toBe(0);
  });

  it('allowed, the same URIs work: local files with uriAllowLocalFile, TLS ones with uriAllowTls require', async () => {
    const dir = t.tempDir('uri-allow-');
    if (!requireBinaries('psktool')) return;
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const sock = join(dir, 'tls.sock');
    t.servers.push(await startServer({ backend: ['memory', '1M'], unixSocket: sock, tls: { mode: 'require', pskFile: psk.path } }));
    const uri = `nbds+unix://alice@/?socket=${sock}&tls-psk-file=${psk.path}`;
    const c = await connect(uri, { uriAllowLocalFile: true, uriAllowTls: 'require', uriAllowTransports: ['unix'] });
    t.clients.push(c);
    expect(c.connection.tls).toBe(true);
    // TLS settings given by the program, not the URI, are not local files of the URI.
    const d = await connect(`nbds+unix://alice@/?socket=${sock}`, { tls: { mode: 'require', pskFile: psk.path } });
    t.clients.push(d);
    expect(d.export.size).toBe(1 << 20);
    // Our nbdinfo, like libnbd's, allows the URI on its command line to name the PSK file.
    ensureBuilt();
    const r = await execa(OUR_NBDINFO, ['--size', uri], { reject: false, timeout: 20_000 });
    expect([r.exitCode, r.stdout.trim(), r.stderr]).toEqual([0, String(1 << 20), '']);
  });
});
