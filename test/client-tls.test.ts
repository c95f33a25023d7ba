// STARTTLS against nbdkit with TLS-PSK: nbds URIs with tls-psk-file, 'allow' mode, and a
// plaintext client refused by a TLS-only server.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { connect } from '../src/client/index.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';
import { teardownAfterEach } from './helpers/teardown.js';

const have = requireBinaries('nbdkit', 'psktool');
const { servers, clients } = teardownAfterEach<RunningServer>();

describe.skipIf(!have)('TLS-PSK with nbdkit', () => {
  it('nbds+unix URI with tls-psk-file and tls-username; allow mode; plaintext refused', async () => {
    const dir = makeTempDir('nbd-tls-client-');
    const psk = join(dir, 'keys.psk');
    makePskFile(psk, 'alice');
    const s = await startNbdkit(['--tls=require', `--tls-psk=${psk}`, 'memory', '1M'], { dir });
    servers.push(s);

    const c = await connect(`nbds+unix:///?socket=${s.socket}&tls-psk-file=${psk}&tls-username=alice`, { uriAllowLocalFile: true });
    clients.push(c);
    expect(c.connection.tls).toBe(true);
    expect(c.connection.uri).toBe(`nbds+unix:///?socket=${s.socket}&tls-username=alice&tls-psk-file=${psk}`);
    const w = Buffer.alloc(256 * 1024);
    for (let i = 0; i < w.length; i++) w[i] = (i * 11) & 0xff;
    await c.pwrite(w, 4096);
    const r = Buffer.alloc(w.length);
    await c.pread(r, 4096);
    expect(r.equals(w)).toBe(true);
    const bs = await c.blockStatus(1 << 20, 0);
    expect(bs.get('base:allocation')!.length).toBeGreaterThan(0);

    const a = await connect(s.uri, { tls: { mode: 'allow', pskFile: psk, username: 'alice' } });
    clients.push(a);
    expect(a.connection.tls).toBe(true);

    await expect(connect(s.uri)).rejects.toMatchObject({ name: 'NbdError', message: /TLS_REQD|TLS/ });
  });

  it('wrong PSK identity fails cleanly', async () => {
    const dir = makeTempDir('nbd-tls-client-');
    const psk = join(dir, 'keys.psk');
    const other = join(dir, 'other.psk');
    makePskFile(psk, 'alice');
    makePskFile(other, 'mallory');
    const s = await startNbdkit(['--tls=require', `--tls-psk=${psk}`, 'memory', '1M'], { dir });
    servers.push(s);
    await expect(connect(s.uri, { tls: { mode: 'require', pskFile: other, username: 'mallory' } }))
      .rejects.toMatchObject({ name: 'NbdError' });
  });
});
