// A server run with --tls=require, driven by hand on the wire: before STARTTLS every option but
// STARTTLS and ABORT gets NBD_REP_ERR_TLS_REQD and the connection stays usable for STARTTLS;
// NBD_OPT_EXPORT_NAME ends the connection; wrong credentials get nothing. The same tests run
// against nbdkit, whose behaviour ours matches where the spec leaves room.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import {
  INFO_BLOCK_SIZE, OPT_ABORT, OPT_EXPORT_NAME, OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT,
  OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_TLS_REQD, REP_INFO, decodeRepInfo,
  buildOption, encodeExportNamePayload, encodeInfoRequestPayload, encodeMetaContextPayload, INFO_EXPORT,
} from '../src/protocol/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { upgradeClientTls } from '../src/tls/client.js';
import type { ClientTlsOptions } from '../src/tls/types.js';
import { requireBinaries } from './helpers/binaries.js';
import { spawnNbdserve } from './helpers/embedded.js';
import { startNbdkit } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makeCa, makeCaOnlyDir, makeClientCert, makePskFile, makeServerCert } from './helpers/tls-fixtures.js';
import { Wire } from './helpers/wire.js';

const haveTools = requireBinaries('certtool', 'psktool');
const haveNbdkit = requireBinaries('nbdkit');
const t = teardownAfterEach();

const SIZE = 1 << 20;

/** Starts `kind` with `flags` then a 1 MiB memory export; returns its socket. */
async function start(kind: 'nbdserve' | 'nbdkit', flags: string[]): Promise<string> {
  if (kind === 'nbdserve') {
    const s = await spawnNbdserve([...flags, 'memory', String(SIZE)]);
    t.push(() => s.stop());
    return s.socket;
  }
  const s = await startNbdkit([...flags, 'memory', String(SIZE)]);
  t.push(() => s.stop());
  return s.socket;
}

async function open(socket: string): Promise<Wire> {
  const w = await Wire.connectUnix(socket);
  t.push(() => w.destroy());
  return w;
}

const goPayload = (): Buffer => encodeInfoRequestPayload('', [INFO_BLOCK_SIZE]);

/** STARTTLS (must be acknowledged), then the TLS handshake; resolves to a Wire over TLS. */
async function startTls(w: Wire, tls: ClientTlsOptions): Promise<Wire> {
  const r = await w.option(OPT_STARTTLS);
  expect(r.map((x) => x.type)).toEqual([REP_ACK]);
  w.detach();
  const secure = await upgradeClientTls(w.stream, tls);
  const s = new Wire(secure);
  t.push(() => s.destroy());
  return s;
}

/** NBD_OPT_GO over `w`; returns the export size from NBD_INFO_EXPORT. */
async function go(w: Wire): Promise<number> {
  const replies = await w.option(OPT_GO, goPayload());
  expect(replies[replies.length - 1]!.type).toBe(REP_ACK);
  const info = replies.filter((r) => r.type === REP_INFO).map((r) => decodeRepInfo(r.payload)).find((i) => i.type === INFO_EXPORT);
  return info !== undefined && info.type === INFO_EXPORT ? info.size : -1;
}

describe.skipIf(!haveTools).each([
  { kind: 'nbdserve' as const, skip: false },
  { kind: 'nbdkit' as const, skip: !haveNbdkit },
])('$kind --tls=require on the wire', ({ kind, skip }) => {
  it.skipIf(skip)('options before STARTTLS get NBD_REP_ERR_TLS_REQD; the same connection then upgrades and opens the export', async () => {
    const dir = t.tempDir('tls-wire-');
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const w = await open(await start(kind, ['--tls=require', `--tls-psk=${psk.path}`]));
    await w.greet();
    const refused = [
      [OPT_GO, goPayload()], [OPT_INFO, goPayload()], [OPT_LIST, undefined],
      [OPT_STRUCTURED_REPLY, undefined], [OPT_LIST_META_CONTEXT, encodeMetaContextPayload('', [])],
      [0x7e57, undefined], // an option no server knows: TLS_REQD all the same, says the spec
    ] as const;
    for (const [option, payload] of refused) {
      const replies = await w.option(option, payload);
      // One reply, the error: a FORCEDTLS server sends no NBD_REP_INFO or NBD_REP_SERVER first.
      expect(replies.map((r) => [r.option, r.type]), `option 0x${option.toString(16)}`).toEqual([[option, REP_ERR_TLS_REQD]]);
    }
    const secure = await startTls(w, { mode: 'require', pskFile: psk.path, username: 'alice' });
    expect(await go(secure)).toBe(SIZE);
  });

  it.skipIf(skip)('NBD_OPT_EXPORT_NAME before STARTTLS: the server closes the connection without a byte', async () => {
    const dir = t.tempDir('tls-wire-');
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const w = await open(await start(kind, ['--tls=require', `--tls-psk=${psk.path}`]));
    await w.greet();
    w.write(buildOption(OPT_EXPORT_NAME, encodeExportNamePayload('')));
    expect(await w.closedByPeer()).toBe(true);
    expect(w.pending).toBe(0);
  });

  it.skipIf(skip)('NBD_OPT_ABORT before STARTTLS is acknowledged, not refused with TLS_REQD', async () => {
    const dir = t.tempDir('tls-wire-');
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const w = await open(await start(kind, ['--tls=require', `--tls-psk=${psk.path}`]));
    await w.greet();
    w.write(buildOption(OPT_ABORT));
    // The spec lets a server ACK or just close; nbdkit ACKs, and so do we.
    expect(await w.readOptionReply()).toEqual({ option: OPT_ABORT, type: REP_ACK, payload: Buffer.alloc(0) });
    expect(await w.closedByPeer()).toBe(true);
  });

  it.skipIf(skip)('a PSK client with the wrong key is refused, and the next good client is served', async () => {
    const dir = t.tempDir('tls-wire-');
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const wrong = makePskFile(join(dir, 'wrong.psk'), 'alice');
    const socket = await start(kind, ['--tls=require', `--tls-psk=${psk.path}`]);
    const w = await open(socket);
    await w.greet();
    const refused = await startTls(w, { mode: 'require', pskFile: wrong.path, username: 'alice', handshakeTimeoutMs: 5000 })
      .then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(NbdError);
    expect((refused as NbdError).message).toMatch(/^TLS: /);
    const good = await connect({ unixSocket: socket }, { tls: { mode: 'require', pskFile: psk.path, username: 'alice' } });
    t.clients.push(good);
    expect(good.export.size).toBe(SIZE);
  });

  it.skipIf(skip)('--tls-verify-peer: an X.509 client without a certificate is refused; one with a certificate is served', async () => {
    const dir = t.tempDir('tls-wire-');
    const ca = makeCa(dir);
    const serverDir = makeServerCert(ca, join(dir, 'server'));
    const caOnly = makeCaOnlyDir(ca, join(dir, 'ca-only'));
    const clientDir = makeClientCert(ca, join(dir, 'client'));
    const socket = await start(kind, ['--tls=require', `--tls-certificates=${serverDir}`, '--tls-verify-peer']);

    const w = await open(socket);
    await w.greet();
    // With TLS 1.3 the server checks the client's certificate after the client's handshake
    // has finished: the refusal then shows as a connection closed before any reply.
    const outcome = await startTls(w, { mode: 'require', certificates: caOnly, handshakeTimeoutMs: 5000 })
      .then(async (secure) => {
        secure.write(buildOption(OPT_GO, goPayload()));
        const closed = await secure.closedByPeer();
        return { closed, bytes: secure.pending };
      }, (e: unknown) => e);
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(NbdError);
    } else {
      expect(outcome).toEqual({ closed: true, bytes: 0 });
    }

    const ok = await open(socket);
    await ok.greet();
    expect(await go(await startTls(ok, { mode: 'require', certificates: clientDir }))).toBe(SIZE);
  });

  it.skipIf(skip)('NBD_OPT_EXPORT_NAME after STARTTLS opens the export', async () => {
    const dir = t.tempDir('tls-wire-');
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const w = await open(await start(kind, ['--tls=require', `--tls-psk=${psk.path}`]));
    await w.greet();
    const secure = await startTls(w, { mode: 'require', pskFile: psk.path, username: 'alice' });
    secure.write(buildOption(OPT_EXPORT_NAME, encodeExportNamePayload('')));
    const reply = await secure.read(10);
    expect(reply.readBigUInt64BE(0)).toBe(BigInt(SIZE));
  });
});
