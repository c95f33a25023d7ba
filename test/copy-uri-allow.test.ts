// copy() and copyMany() take connect()'s URI allow-lists with its defaults (no local files): a
// refused URI side is one NbdError EPERM before either side is opened (no socket, no key file
// read, no destination created), while nbdcopy, single copy and --batch alike, allows what
// libnbd's nbdcopy allows.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { copy, copyMany } from '../src/copy/index.js';
import type { UriAllowList } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { startServer } from '../src/server/index.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { startRecordingServer } from './helpers/wire.js';

const t = teardownAfterEach();

/** A listening socket that counts connections: a refused copy must never reach it. */
async function listener(): Promise<{ socket: string; accepted: () => number }> {
  const srv = await startRecordingServer(async (peer) => { peer.destroy(); });
  t.push(() => srv.stop());
  return { socket: srv.socket, accepted: () => srv.accepted };
}

/** A TLS-only server with a PSK, and a URI that names the key file. */
async function tlsServer(size: number): Promise<{ uri: string; psk: string }> {
  const dir = t.tempDir('copy-allow-');
  const psk = makePskFile(join(dir, 'keys.psk'), 'alice').path;
  const socket = join(dir, 'tls.sock');
  t.servers.push(await startServer({ backend: ['memory', String(size)], unixSocket: socket, tls: { mode: 'require', pskFile: psk } }));
  return { uri: `nbds+unix://alice@/?socket=${socket}&tls-psk-file=${psk}`, psk };
}

describe('copy(): URI allow-lists, with connect()\'s defaults', () => {
  const refusals: Array<[string, (s: string) => string, UriAllowList]> = [
    ['a PSK file, by default', (s) => `nbds+unix:///?socket=${s}&tls-psk-file=/nonexistent/keys.psk`, {}],
    ['a certificate directory, by default', (s) => `nbds+unix:///?socket=${s}&tls-certificates=/nonexistent/pki`, {}],
    ['a Unix socket, with transports [tcp]', (s) => `nbd+unix:///?socket=${s}`, { uriAllowTransports: ['tcp'] }],
    ['TLS, with uriAllowTls off', (s) => `nbds+unix:///?socket=${s}`, { uriAllowTls: 'off' }],
    ['no TLS, with uriAllowTls require', (s) => `nbd+unix:///?socket=${s}`, { uriAllowTls: 'require' }],
  ];
  for (const [what, uriFor, allow] of refusals) {
    it(`${what}: EPERM on either side, nothing opened, nothing created`, async () => {
      const refused = await listener();
      const dir = t.tempDir('copy-allow-');
      const out = join(dir, 'out.img');
      const src = join(dir, 'src.img');
      writeFileSync(src, Buffer.alloc(4096, 1));
      const uri = uriFor(refused.socket);
      // The PSK file and certificate directory do not exist: had one been read, ENOENT.
      const asSource = await copy(uri, out, allow).catch((e: unknown) => e);
      expect(asSource).toBeInstanceOf(NbdError);
      expect(asSource).toMatchObject({ code: 'EPERM', message: expect.stringMatching(/allowed \(uriAllow\w+\)|is '(off|require)'\)$/) });
      expect((asSource as Error).message.startsWith(`NBD URI '${uri}': `)).toBe(true);
      expect(existsSync(out)).toBe(false);
      await expect(copy(src, uri, allow)).rejects.toMatchObject({ name: 'NbdError', code: 'EPERM' });
      await expect(copy(uri, 'null:', { ...allow, retries: 3, retryDelayMs: 10 })).rejects.toMatchObject({ code: 'EPERM' });
      expect(refused.accepted()).toBe(0);
    });
  }

  it('a refused destination stops the copy before its source, an allowed URI, is opened', async () => {
    const source = await listener();
    const destination = await listener();
    await expect(copy(`nbd+unix:///?socket=${source.socket}`, `nbds+unix:///?socket=${destination.socket}&tls-psk-file=/nonexistent/k`))
      .rejects.toMatchObject({ name: 'NbdError', code: 'EPERM' });
    expect([source.accepted(), destination.accepted()]).toEqual([0, 0]);
  });

  it('allowed, the same copies run: a PSK file with uriAllowLocalFile, TLS with uriAllowTls require', async () => {
    if (!requireBinaries('psktool')) return;
    const size = 3 << 20;
    const { uri } = await tlsServer(size);
    const out = join(t.tempDir('copy-allow-'), 'out.img');
    const r = await copy(uri, out, { uriAllowLocalFile: true, uriAllowTls: 'require', uriAllowTransports: ['unix'], connections: 2 });
    expect(r.bytes).toBe(size);
    const back = await copy(out, uri, { uriAllowLocalFile: true, retries: 2, retryDelayMs: 10 });
    expect(back.bytes).toBe(size);
  });
});

describe('copyMany(): each job\'s allow-lists reach its copy', () => {
  it('a job naming a key file is refused by default and runs with uriAllowLocalFile', async () => {
    if (!requireBinaries('psktool')) return;
    const { uri } = await tlsServer(1 << 20);
    const dir = t.tempDir('copy-allow-');
    const outcomes = await copyMany([
      { source: uri, destination: join(dir, 'a.img') },
      { source: uri, destination: join(dir, 'b.img'), options: { uriAllowLocalFile: true } },
      { source: uri, destination: join(dir, 'c.img'), options: { uriAllowLocalFile: true, uriAllowTransports: ['tcp'] } },
    ], { concurrency: 3 });
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    for (const i of [0, 2]) expect((outcomes[i] as { error: NbdError }).error).toMatchObject({ name: 'NbdError', code: 'EPERM' });
    expect([existsSync(join(dir, 'a.img')), existsSync(join(dir, 'b.img')), existsSync(join(dir, 'c.img'))]).toEqual([false, true, false]);
  });
});

describe('nbdcopy allows local files in URIs, as libnbd\'s does', () => {
  it('a single copy and a --batch line with tls-psk-file=', async () => {
    if (!requireBinaries('psktool')) return;
    ensureBuilt();
    const size = 2 << 20;
    const { uri } = await tlsServer(size);
    const dir = t.tempDir('copy-allow-');
    const single = await execa(OUR_NBDCOPY, [uri, join(dir, 'one.img')], { reject: false, timeout: 30_000 });
    expect([single.exitCode, single.stderr]).toEqual([0, '']);
    const batch = join(dir, 'jobs.jsonl');
    writeFileSync(batch, `${JSON.stringify({ source: uri, destination: join(dir, 'two.img') })}\n`);
    const many = await execa(OUR_NBDCOPY, ['--batch', batch], { reject: false, timeout: 30_000 });
    expect(many.exitCode).toBe(0);
    expect(existsSync(join(dir, 'two.img'))).toBe(true);
  });
});
