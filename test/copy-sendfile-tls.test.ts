// pwriteFromFile over TLS: Node's TLS layer owns the socket, so the payload must be read into
// a buffer and encrypted (no sendfile), and the bytes must still land exactly; nbdcopy file ->
// nbds:// takes the same buffer path.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient, connect } from '../src/client/index.js';
import { makeTlsCredentials, startNbdkit, type RunningServer } from './helpers/tls-fixtures.js';
import { requireBinary } from './helpers/binaries.js';
import { removeDir } from './helpers/temp.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { noise, sha256 } from './helpers/files.js';
import { teardownAfterEach } from './helpers/teardown.js';

const tools = requireBinary('certtool') && requireBinary('psktool') && requireBinary('nbdkit');
let root: string;
let psk: string;
const { servers, clients } = teardownAfterEach<RunningServer>();
let started = 0;

beforeAll(() => {
  if (!tools) return;
  ensureBuilt();
  ({ root, psk } = makeTlsCredentials());
});
afterAll(() => removeDir(root));

async function tlsMemory(size: number): Promise<string> {
  const s = await startNbdkit(root, ['--tls=require', `--tls-psk=${psk}`, 'memory', String(size)], `sf${started++}.sock`);
  servers.push(s);
  return s.uri('nbds+unix', `tls-psk-file=${encodeURIComponent(psk)}`, 'alice');
}

describe.skipIf(!tools)('writes from a file over TLS', () => {
  it('NbdClient.pwriteFromFile copies through a buffer and lands exactly', async () => {
    const data = noise(300_001, 4);
    const file = join(root, 'tls-src.img');
    fs.writeFileSync(file, data);
    const c = await connect(await tlsMemory(1 << 20), { uriAllowLocalFile: true });
    clients.push(c);
    await NbdClient.loadFileSupport();
    expect(c.sendsFromFile).toBe(false);
    const fd = fs.openSync(file, 'r');
    try {
      let sent = false;
      await c.pwriteFromFile(fd, 1, 300_000, 4096, undefined, () => { sent = true; });
      expect(sent).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
    const back = Buffer.alloc(300_000);
    await c.pread(back, 4096);
    expect(sha256(back)).toBe(sha256(data.subarray(1)));
  });

  it('nbdcopy file -> nbds:// is byte-exact and uses no sendfile', async () => {
    const size = 3 * (1 << 20) + 333;
    const data = noise(size, 6);
    const file = join(root, 'tls-copy.img');
    fs.writeFileSync(file, data);
    const uri = await tlsMemory(size);
    const r = spawnSync(OUR_NBDCOPY, ['-v', file, uri], { env: { ...process.env, NBD_DEBUG: '' }, timeout: 50_000 });
    expect(r.status).toBe(0);
    expect(r.stderr.toString()).not.toMatch(/by sendfile/);
    const c = await connect(uri, { uriAllowLocalFile: true });
    clients.push(c);
    const back = Buffer.alloc(size);
    await c.pread(back, 0);
    expect(sha256(back)).toBe(sha256(data));
  });
});
