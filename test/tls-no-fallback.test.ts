// A client that requires TLS never falls back to plaintext: a server that declines STARTTLS
// (NBD_REP_ERR_UNSUP, NBD_REP_ERR_POLICY, no TLS configured), that speaks plain newstyle or
// oldstyle, gets one typed error from connect() and, checked byte for byte on the server's
// side, nothing after the refused STARTTLS: no option, no export name, no request.
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import {
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, OPTION_HEADER_SIZE, OPT_STARTTLS,
  REP_ERR_POLICY, REP_ERR_UNSUP, buildOption, buildOptionReply, encodeErrorText, encodeNewstyleGreeting,
  encodeOldstyleHandshake, OLDSTYLE_HANDSHAKE_SIZE, NEWSTYLE_GREETING_SIZE, decodeOptionHeader,
} from '../src/protocol/index.js';
import { NbdError } from '../src/protocol/errors.js';
import type { ClientTlsOptions } from '../src/tls/types.js';
import { requireBinaries } from './helpers/binaries.js';
import { spawnNbdserve } from './helpers/embedded.js';
import { startNbdkit } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { startRecordingServer, type Wire } from './helpers/wire.js';

const havePsktool = requireBinaries('psktool');
const haveNbdkit = requireBinaries('nbdkit');
const t = teardownAfterEach();

/** What a client that asked for STARTTLS first has sent: its flags and that one option. */
const FLAGS_AND_STARTTLS = (() => {
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
  return Buffer.concat([flags, buildOption(OPT_STARTTLS)]);
})();

function requireTls(dir: string): ClientTlsOptions {
  return { mode: 'require', pskFile: makePskFile(join(dir, 'keys.psk'), 'alice').path, username: 'alice' };
}

/** A server that greets (fixed newstyle), reads one option and refuses it with `type`. */
function refusingStartTls(type: number) {
  return async (peer: Wire): Promise<void> => {
    const g = Buffer.alloc(NEWSTYLE_GREETING_SIZE);
    encodeNewstyleGreeting(g, 0, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    peer.write(g);
    await peer.read(4);
    const h = decodeOptionHeader(await peer.read(OPTION_HEADER_SIZE));
    if (h.length) await peer.read(h.length);
    peer.write(buildOptionReply(h.option, type, encodeErrorText('no TLS here')));
    // Then wait: whatever the client sends next is recorded.
    await peer.closedByPeer(5000);
  };
}

async function expectRefusedWithNothingSent(
  script: (peer: Wire) => Promise<void>, sentBeforeRefusal: Buffer, code: string,
): Promise<void> {
  const srv = await startRecordingServer(script);
  t.push(() => srv.stop());
  const err = await connect(srv.uri, { tls: requireTls(t.tempDir('no-fallback-')) }).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(NbdError);
  expect((err as NbdError).code).toBe(code);
  await srv.finished;
  expect(srv.received().toString('hex')).toBe(sentBeforeRefusal.toString('hex'));
  expect(srv.accepted).toBe(1);
}

describe.skipIf(!havePsktool)('TLS required: no fallback to plaintext', () => {
  it.each([
    ['NBD_REP_ERR_UNSUP', REP_ERR_UNSUP],
    ['NBD_REP_ERR_POLICY', REP_ERR_POLICY],
  ])('STARTTLS answered with %s: EPERM, and nothing follows the STARTTLS option', async (_name, type) => {
    await expectRefusedWithNothingSent(refusingStartTls(type), FLAGS_AND_STARTTLS, 'EPERM');
  });

  it('a plain newstyle server (no NBD_FLAG_FIXED_NEWSTYLE, so no STARTTLS): EPERM before a byte is sent', async () => {
    await expectRefusedWithNothingSent(async (peer) => {
      const g = Buffer.alloc(NEWSTYLE_GREETING_SIZE);
      encodeNewstyleGreeting(g, 0, FLAG_NO_ZEROES);
      peer.write(g);
      await peer.closedByPeer(5000);
    }, Buffer.alloc(0), 'EPERM');
  });

  it('an oldstyle server (no options at all): EPERM, and no request is sent', async () => {
    await expectRefusedWithNothingSent(async (peer) => {
      const h = Buffer.alloc(OLDSTYLE_HANDSHAKE_SIZE);
      encodeOldstyleHandshake(h, 0, { size: 1 << 20, flags: 1 });
      peer.write(h);
      await peer.closedByPeer(5000);
    }, Buffer.alloc(0), 'EPERM');
  });

  it.each([
    ['nbdserve', false],
    ['nbdkit', !haveNbdkit],
  ] as const)('%s without TLS (seen through a recording proxy): EPERM after STARTTLS, nothing else sent', async (kind, skip) => {
    if (skip) return;
    const server = kind === 'nbdserve' ? await spawnNbdserve(['memory', '1M']) : await startNbdkit(['memory', '1M']);
    t.push(() => server.stop());
    // The proxy passes bytes both ways and keeps what the client sent.
    await expectRefusedWithNothingSent(async (peer) => {
      const upstream = net.connect(server.socket);
      upstream.on('error', () => undefined);
      upstream.on('data', (c: Buffer) => peer.write(c));
      peer.stream.on('data', (c: Buffer) => upstream.write(c));
      await peer.closedByPeer(5000);
      upstream.destroy();
    }, FLAGS_AND_STARTTLS, 'EPERM');
  });

  it('option mode too: a refused STARTTLS ends the connection before the caller can send anything', async () => {
    const srv = await startRecordingServer(refusingStartTls(REP_ERR_UNSUP));
    t.push(() => srv.stop());
    await expect(connect(srv.uri, { tls: requireTls(t.tempDir('no-fallback-')), optMode: true }))
      .rejects.toMatchObject({ code: 'EPERM' });
    await srv.finished;
    expect(srv.received().equals(FLAGS_AND_STARTTLS)).toBe(true);
  });
});
