// The client checks the server certificate's name against the host it connects to, for every
// TCP target ({ host } as well as nbds URIs): a certificate from the trusted CA issued for
// another name is refused with EACCES, as libnbd refuses it.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MultiConn, connect } from '../src/client/index.js';
import { NbdError } from '../src/protocol/errors.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import type { ClientTlsOptions } from '../src/tls/types.js';
import { requireBinaries } from './helpers/binaries.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makeCa, makeCaOnlyDir, makeServerCert, type Ca } from './helpers/tls-fixtures.js';

const have = requireBinaries('certtool');
const t = teardownAfterEach<RunningServer>();

let ca: Ca;
let trustCa: string;
let root: string;

beforeAll(() => {
  if (!have) return;
  root = makeTempDir('tls-host-name-');
  ca = makeCa(root);
  trustCa = makeCaOnlyDir(ca, join(root, 'trust'));
});

/** Our server on 127.0.0.1 with a certificate from the trusted CA for `names`. */
async function serveWithCertFor(names: string[]): Promise<number> {
  const dir = makeServerCert(ca, join(root, names.join('+')), names);
  const s = await startServer({ backend: ['memory', '1M'], host: '127.0.0.1', port: 0, tls: { mode: 'require', certificates: dir } });
  t.servers.push(s);
  return s.port!;
}

const tls = (extra: Partial<ClientTlsOptions> = {}): ClientTlsOptions => ({ mode: 'require', certificates: trustCa, ...extra });

async function refusal(p: Promise<{ close(): Promise<void> }>): Promise<NbdError> {
  const r = await p.then(async (c) => { await c.close(); return undefined; }, (e: unknown) => e);
  if (!(r instanceof NbdError)) throw new Error(`expected an NbdError, got ${r === undefined ? 'a connection' : String(r)}`);
  return r;
}

describe.skipIf(!have)('TLS: the server certificate names the host connected to', () => {
  it('{ host }: a certificate for another name is refused (EACCES); one for the host is accepted', async () => {
    const port = await serveWithCertFor(['nbd.example.com']);
    const err = await refusal(connect({ host: '127.0.0.1', port }, { tls: tls() }));
    expect(err.code).toBe('EACCES');
    expect(err.message).toMatch(/certificate does not match the host name/);
    const wrongDns = await refusal(connect({ host: 'localhost', port }, { tls: tls() }));
    expect(wrongDns.code).toBe('EACCES');

    const right = await serveWithCertFor(['localhost', '127.0.0.1']);
    for (const host of ['127.0.0.1', 'localhost']) {
      const c = await connect({ host, port: right }, { tls: tls() });
      expect(c.connection.tls).toBe(true);
      await c.close();
    }
  });

  it('tls.hostname names the one to check; verifyPeer: false checks neither chain nor name', async () => {
    const port = await serveWithCertFor(['nbd.example.com']);
    const named = await connect({ host: '127.0.0.1', port }, { tls: tls({ hostname: 'nbd.example.com' }) });
    await named.close();
    const other = await refusal(connect({ host: '127.0.0.1', port }, { tls: tls({ hostname: 'evil.example.com' }) }));
    expect(other.code).toBe('EACCES');
    const unchecked = await connect({ host: '127.0.0.1', port }, { tls: tls({ verifyPeer: false }) });
    await unchecked.close();
  });

  it('nbds URIs and MultiConn.open({ host }) check the name too', async () => {
    const port = await serveWithCertFor(['nbd.example.com']);
    const viaUri = await refusal(connect(`nbds://127.0.0.1:${port}/`, { tls: tls() }));
    expect(viaUri.code).toBe('EACCES');
    const multi = await refusal(MultiConn.open({ host: '127.0.0.1', port }, { tls: tls(), connections: 2 }));
    expect(multi.code).toBe('EACCES');
  });

  it('a Unix socket has no host: the chain is checked, the name is not (unless tls.hostname is set)', async () => {
    const dir = makeServerCert(ca, join(root, 'unix'), ['nbd.example.com']);
    const sock = join(root, 'unix.sock');
    t.servers.push(await startServer({ backend: ['memory', '1M'], unixSocket: sock, tls: { mode: 'require', certificates: dir } }));
    const c = await connect({ unixSocket: sock }, { tls: tls() });
    await c.close();
    const named = await refusal(connect({ unixSocket: sock }, { tls: tls({ hostname: 'localhost' }) }));
    expect(named.code).toBe('EACCES');
  });
});
