// nbdserve's TLS flags as nbdkit spells them (--tls, --tls-psk), checked with libnbd's nbdinfo
// and nbdcopy: TLS required means a plaintext client gets nothing, a PSK client gets the data.
import { execFile as execFileCb } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fillPattern } from '../src/server/index.js';
import { makeCa, makeClientCert, makePskFile, makeServerCert } from './helpers/tls-fixtures.js';
import { spawnNbdserve, type SpawnedNbdserve } from './helpers/embedded.js';
import { requireBinaries } from './helpers/binaries.js';
import { makeTempDir, removeDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const execFile = promisify(execFileCb);
const have = requireBinaries('/usr/bin/nbdinfo', '/usr/bin/nbdcopy', 'psktool', 'certtool');

const cleanups = teardownAfterEach();

describe.skipIf(!have)('nbdserve --tls', () => {
  it('--tls=require --tls-psk: PSK clients read the pattern, plaintext clients are refused', async () => {
    const dir = makeTempDir('server-tls-cli-');
    cleanups.push(() => removeDir(dir));
    const psk = makePskFile(join(dir, 'keys.psk'), 'alice');
    const srv: SpawnedNbdserve = await spawnNbdserve(['--tls=require', '--tls-psk', psk.path, 'pattern', '1M']);
    cleanups.push(() => srv.stop());
    const uri = `nbds+unix://alice@/?socket=${encodeURIComponent(srv.socket)}&tls-psk-file=${encodeURIComponent(psk.path)}`;
    const { stdout } = await execFile('/usr/bin/nbdinfo', ['--json', uri], { timeout: 20_000 });
    const j = JSON.parse(stdout);
    expect(j.TLS).toBe(true);
    expect(j.exports[0]['export-size']).toBe(1024 * 1024);
    await execFile('/usr/bin/nbdcopy', [uri, join(dir, 'out.img')], { timeout: 20_000 });
    const want = Buffer.alloc(1024 * 1024);
    fillPattern(want, 0);
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(join(dir, 'out.img')))).toBe(sha(want));
    await expect(execFile('/usr/bin/nbdinfo', [srv.uri], { timeout: 20_000 })).rejects.toMatchObject({ code: 1 });
    // The server survived all of it.
    const again = await execFile('/usr/bin/nbdinfo', ['--size', uri], { timeout: 20_000 });
    expect(again.stdout.trim()).toBe(String(1024 * 1024));
  });

  it('--tls=on --tls-certificates --tls-verify-peer: X.509 with a client certificate, plaintext still allowed', async () => {
    const dir = makeTempDir('server-tls-cli-');
    cleanups.push(() => removeDir(dir));
    const ca = makeCa(dir);
    const serverDir = makeServerCert(ca, join(dir, 'server'));
    const clientDir = makeClientCert(ca, join(dir, 'client'));
    const srv = await spawnNbdserve(['--tls=on', '--tls-certificates', serverDir, '--tls-verify-peer', 'memory', '1M']);
    cleanups.push(() => srv.stop());
    const tlsUri = `nbds+unix:///?socket=${encodeURIComponent(srv.socket)}&tls-certificates=${encodeURIComponent(clientDir)}`;
    const j = JSON.parse((await execFile('/usr/bin/nbdinfo', ['--json', tlsUri], { timeout: 20_000 })).stdout);
    expect(j.TLS).toBe(true);
    // --tls=on (not require): a plaintext client is still served.
    const plain = JSON.parse((await execFile('/usr/bin/nbdinfo', ['--json', srv.uri], { timeout: 20_000 })).stdout);
    expect(plain.TLS).toBe(false);
    expect(plain.exports[0]['export-size']).toBe(1024 * 1024);
  });
});
