// Interop with qemu-nbd (qcow2: data, block status, qemu:allocation-depth, a dirty bitmap) and
// nbd-server (config file on a Unix socket and on a TCP port).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { startNbdServer, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries, requireBinary } from './helpers/binaries.js';
import { teardownAfterEach } from './helpers/teardown.js';

const haveQemu = requireBinaries('qemu-nbd', 'qemu-img', 'qemu-io');
const haveNbdServer = requireBinary('nbd-server');
const { servers, clients } = teardownAfterEach<RunningServer>();

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const K64 = 65536;
const M = 1 << 20;

/** A 4 MiB qcow2: 64 KiB at 2 MiB written before bitmap b0 existed, 64 KiB at 0 and 1 MiB after. */
function makeQcow2(dir: string): string {
  const img = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '4M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x33 ${2 * M} 64k`, img], { stdio: 'ignore' });
  execFileSync('qemu-img', ['bitmap', '--add', img, 'b0']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 0 64k', '-c', `write -P 0x66 ${M} 64k`, img], { stdio: 'ignore' });
  return img;
}

/** Flags of the extent covering `offset`. */
function flagsAt(extents: Array<{ length: number; flags: number }>, offset: number): number {
  let at = 0;
  for (const e of extents) {
    if (offset < at + e.length) return e.flags;
    at += e.length;
  }
  throw new Error(`offset ${offset} not covered`);
}

describe.skipIf(!haveQemu)('qemu-nbd', () => {
  it('qcow2: reads, writes, zero, trim, flush, and three meta contexts', async () => {
    const dir = makeTempDir('qemu-nbd-');
    const img = makeQcow2(dir);
    const s = await startQemuNbd(['-f', 'qcow2', '-A', '-B', 'b0', img], { dir });
    servers.push(s);
    const c = await connect(s.uri, { metaContexts: ['base:allocation', 'qemu:allocation-depth', 'qemu:dirty-bitmap:b0'] });
    clients.push(c);
    expect(c.export.size).toBe(4 * M);
    expect(c.connection.structuredReplies).toBe(true);
    expect(c.connection.metaContexts.sort()).toEqual(['base:allocation', 'qemu:allocation-depth', 'qemu:dirty-bitmap:b0']);

    const b = Buffer.alloc(K64);
    await c.pread(b, 0);
    expect(b.every((x) => x === 0x55)).toBe(true);
    await c.pread(b, 2 * M);
    expect(b.every((x) => x === 0x33)).toBe(true);

    const bs = await c.blockStatus(4 * M, 0);
    const alloc = bs.get('base:allocation')!;
    const depth = bs.get('qemu:allocation-depth')!;
    const dirty = bs.get('qemu:dirty-bitmap:b0')!;
    expect(flagsAt(alloc, 0)).toBe(0);
    expect(flagsAt(alloc, 3 * M) & 2).toBe(2);
    expect(flagsAt(depth, 0)).toBe(1);
    expect(flagsAt(depth, 3 * M)).toBe(0);
    expect(flagsAt(dirty, 0)).toBe(1);
    expect(flagsAt(dirty, M)).toBe(1);
    expect(flagsAt(dirty, 2 * M)).toBe(0);

    const w = Buffer.alloc(K64);
    for (let i = 0; i < w.length; i++) w[i] = (i * 13) & 0xff;
    await c.pwrite(w, 3 * M);
    await c.zero(K64, 0);
    if (c.export.canTrim) await c.trim(K64, M); // qemu-nbd ignores discards unless --discard=unmap
    await c.flush();
    const r = Buffer.alloc(K64);
    await c.pread(r, 3 * M);
    expect(sha(r)).toBe(sha(w));
    await c.pread(r, 0);
    expect(r.every((x) => x === 0)).toBe(true);
    const one = await c.blockStatus(4 * M, 0, { reqOne: true });
    for (const ext of one.values()) expect(ext.length).toBe(1);
  });

  it('read-only export (-r) and an export name (-x)', async () => {
    const dir = makeTempDir('qemu-nbd-');
    const img = makeQcow2(dir);
    const s = await startQemuNbd(['-r', '-e', '2', '-x', 'the disk', '-f', 'qcow2', img], { dir, exportName: 'the disk' });
    servers.push(s);
    const c = await connect(s.uri);
    clients.push(c);
    expect(c.export.readOnly).toBe(true);
    expect(c.export.exportName).toBe('the disk');
    expect(c.export.blockSizeFromServer).toBe(true);
    await expect(c.pwrite(Buffer.alloc(512), 0)).rejects.toMatchObject({ code: 'EPERM' });
    const b = Buffer.alloc(K64);
    await c.pread(b, M);
    expect(b.every((x) => x === 0x66)).toBe(true);
    await expect(connect(s.uri.replace('the%20disk', 'nope'))).rejects.toMatchObject({ name: 'NbdError', message: /NBD_OPT_GO/ });
  });
});

describe.skipIf(!haveNbdServer)('nbd-server', () => {
  for (const tcp of [false, true]) {
    it(`config file, ${tcp ? 'TCP port on 127.0.0.1' : 'Unix socket'}: list, read, write`, async () => {
      const dir = makeTempDir('nbd-server-');
      const file = join(dir, 'disk.img');
      const data = Buffer.alloc(2 * M);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
      writeFileSync(file, data);
      const s = await startNbdServer([{ name: 'disk', file }, { name: 'ro', file, readOnly: true }], { dir, tcp });
      servers.push(s);
      const lister = await connect(s.uri, { optMode: true });
      clients.push(lister);
      expect((await lister.optList()).map((e) => e.name).sort()).toEqual(['disk', 'ro']);
      await lister.optAbort();

      const c = await connect(s.uri);
      clients.push(c);
      expect(c.export.size).toBe(2 * M);
      const r = Buffer.alloc(M);
      await c.pread(r, M);
      expect(sha(r)).toBe(sha(data.subarray(M)));
      const w = Buffer.alloc(4096, 0xab);
      await c.pwrite(w, 8192);
      if (c.export.canFlush) await c.flush();
      await c.close();
      expect(readFileSync(file).subarray(8192, 8192 + 4096).equals(w)).toBe(true);

      const ro = await connect(s.uri.replace('/disk', '/ro'));
      clients.push(ro);
      expect(ro.export.readOnly).toBe(true);
    });
  }
});
