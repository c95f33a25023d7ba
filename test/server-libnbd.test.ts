// Clients nobody here wrote, against our server: libnbd's nbdinfo and nbdcopy, qemu-img, and
// nbdkit's nbd plugin forwarding to us. Bytes are checked with checksums and against nbdkit.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fillPattern } from '../src/server/index.js';
import { startNbdkit, type RunningServer as Foreign } from './helpers/servers.js';
import { embeddedStarter, spawnNbdserve, type SpawnedNbdserve } from './helpers/embedded.js';
import { requireBinaries } from './helpers/binaries.js';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { execa } from 'execa';

const NBDINFO = '/usr/bin/nbdinfo';
const NBDCOPY = '/usr/bin/nbdcopy';
const have = requireBinaries(NBDINFO, NBDCOPY, 'nbdkit', 'qemu-img');

const cleanups = teardownAfterEach();
const ours = embeddedStarter(cleanups);

const tempDir = (): string => cleanups.tempDir('server-libnbd-');

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** stdout of a libnbd tool; a failure rejects with the command line, status and stderr. */
async function run(cmd: string, args: string[]): Promise<string> {
  return (await execa(cmd, args, { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 })).stdout;
}

describe.skipIf(!have)('libnbd tools against our server', () => {
  it('nbdinfo --json reports the facts of a writable memory export and a read-only pattern export', async () => {
    const mem = await ours({ backend: ['memory', '1G'], description: 'scratch disk' });
    const j = JSON.parse(await run(NBDINFO, ['--json', mem.uri]));
    expect(j.protocol).toBe('newstyle-fixed');
    expect(j.structured).toBe(true);
    const e = j.exports[0];
    expect(e['export-size']).toBe(1024 ** 3);
    expect(e.description).toBe('scratch disk');
    expect(e.is_read_only).toBe(false);
    for (const k of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_fast_zero', 'can_multi_conn', 'can_cache', 'can_df']) expect(e[k], k).toBe(true);
    expect(e.contexts).toContain('base:allocation');
    expect(e.block_size_minimum).toBe(1);
    expect(e.block_size_preferred).toBe(4096);
    expect(e.block_size_maximum).toBe(32 * 1024 * 1024);

    const pat = await ours({ backend: ['pattern', '5G'] });
    const p = JSON.parse(await run(NBDINFO, ['--json', pat.uri])).exports[0];
    expect(p['export-size']).toBe(5 * 1024 ** 3);
    expect(p.is_read_only).toBe(true);
    expect(p.can_trim).toBe(false);
    expect(p.can_zero).toBe(false);
  });

  it('nbdinfo --list shows every export with its description; --map shows holes of sparse-random', async () => {
    const s = await ours({
      exports: {
        alpha: { backend: ['memory', '1M'], description: 'first one' },
        beta: { backend: ['null', '2M'], description: 'second one' },
      },
    });
    const list = JSON.parse(await run(NBDINFO, ['--list', '--json', s.uri]));
    const byName = Object.fromEntries(list.exports.map((e: { 'export-name': string }) => [e['export-name'], e]));
    expect(Object.keys(byName).sort()).toEqual(['alpha', 'beta']);
    expect(byName.alpha.description).toBe('first one');
    expect(byName.beta['export-size']).toBe(2 * 1024 * 1024);

    const sr = await ours({ backend: ['sparse-random', '64M', 'seed=7'] });
    const map = JSON.parse(await run(NBDINFO, ['--map', '--json', sr.uri]));
    const total = map.reduce((a: number, e: { length: number }) => a + e.length, 0);
    expect(total).toBe(64 * 1024 * 1024);
    const data = map.filter((e: { type: number }) => e.type === 0).reduce((a: number, e: { length: number }) => a + e.length, 0);
    // About 1% data by default.
    expect(data).toBeGreaterThan(64 * 1024 * 1024 * 0.002);
    expect(data).toBeLessThan(64 * 1024 * 1024 * 0.05);
  });

  it('pattern bytes equal nbdkit pattern bytes, below and above 4 GiB', async () => {
    const dir = tempDir();
    const s = await ours({ backend: ['pattern', '8M'] });
    await run(NBDCOPY, [s.uri, join(dir, 'ours.img')]);
    const kit = await startNbdkit(['pattern', '8M']);
    cleanups.push(() => kit.stop());
    await run(NBDCOPY, [kit.uri, join(dir, 'kit.img')]);
    expect(sha(readFileSync(join(dir, 'ours.img')))).toBe(sha(readFileSync(join(dir, 'kit.img'))));
    // Words past 4 GiB have a nonzero high half: compare our generator with nbdkit there too,
    // reading through nbdkit's offset filter.
    const high = await startNbdkit(['--filter=offset', 'pattern', '5G', 'offset=4294901760', 'range=1048576']);
    cleanups.push(() => high.stop());
    await run(NBDCOPY, [high.uri, join(dir, 'high.img')]);
    const mine = Buffer.alloc(1048576);
    fillPattern(mine, 4294901760);
    expect(sha(mine)).toBe(sha(readFileSync(join(dir, 'high.img'))));
  });

  it('nbdcopy out to a file and back in to a memory export, checksums equal, holes kept', async () => {
    const dir = tempDir();
    const src = join(dir, 'src.img');
    const data = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < 1024 * 1024; i += 997) data[i] = (i * 31) & 0xff;
    data.fill(0xab, 6 * 1024 * 1024, 6 * 1024 * 1024 + 65536);
    writeFileSync(src, data);
    const mem = await ours({ backend: ['memory', '8M'] });
    await run(NBDCOPY, [src, mem.uri]);
    await run(NBDCOPY, [mem.uri, join(dir, 'back.img')]);
    expect(sha(readFileSync(join(dir, 'back.img')))).toBe(sha(data));
    // The zero region between the two data areas came back as a hole in the file.
    const st = statSync(join(dir, 'back.img'));
    expect(st.blocks * 512).toBeLessThan(data.length);
    // And nbdinfo --map sees it as a hole in our memory export.
    const map = JSON.parse(await run(NBDINFO, ['--map', '--json', mem.uri]));
    expect(map.some((e: { type: number }) => (e.type & 1) === 1)).toBe(true);
  });

  it('nbdcopy with libnbd-started servers: [ nbdserve ... ] socket activation both ways', async () => {
    ensureBuilt();
    const dir = tempDir();
    await run(NBDCOPY, ['--', '[', NBDSERVE, 'pattern', '4M', ']', join(dir, 'p.img')]);
    const expected = Buffer.alloc(4 * 1024 * 1024);
    fillPattern(expected, 0);
    expect(sha(readFileSync(join(dir, 'p.img')))).toBe(sha(expected));
    const j = JSON.parse(await run(NBDINFO, ['--json', '--', '[', NBDSERVE, '-r', 'memory', '3M', ']']));
    expect(j.exports[0]['export-size']).toBe(3 * 1024 * 1024);
    expect(j.exports[0].is_read_only).toBe(true);
  });

  it('qemu-img info and convert over nbd+unix', async () => {
    const dir = tempDir();
    const s = await ours({ backend: ['pattern', '2M'] });
    const info = JSON.parse(await run('qemu-img', ['info', '--output=json', s.uri]));
    expect(info['virtual-size']).toBe(2 * 1024 * 1024);
    await run('qemu-img', ['convert', '-O', 'raw', s.uri, join(dir, 'q.raw')]);
    const expected = Buffer.alloc(2 * 1024 * 1024);
    fillPattern(expected, 0);
    expect(sha(readFileSync(join(dir, 'q.raw')))).toBe(sha(expected));
    const mem = await ours({ backend: ['memory', '2M'] });
    await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', join(dir, 'q.raw'), mem.uri]);
    await run(NBDCOPY, [mem.uri, join(dir, 'back.raw')]);
    expect(sha(readFileSync(join(dir, 'back.raw')))).toBe(sha(expected));
  });

  it('nbdkit nbd plugin forwarding to our server', async () => {
    const s = await ours({ backend: ['memory', '4M'], description: 'behind a proxy' });
    const proxy: Foreign = await startNbdkit(['nbd', `socket=${s.socket}`]);
    cleanups.push(() => proxy.stop());
    const j = JSON.parse(await run(NBDINFO, ['--json', proxy.uri]));
    expect(j.exports[0]['export-size']).toBe(4 * 1024 * 1024);
    const dir = tempDir();
    const data = Buffer.alloc(4 * 1024 * 1024, 0x5a);
    writeFileSync(join(dir, 'in.img'), data);
    await run(NBDCOPY, [join(dir, 'in.img'), proxy.uri]);
    await run(NBDCOPY, [s.uri, join(dir, 'out.img')]);
    expect(sha(readFileSync(join(dir, 'out.img')))).toBe(sha(data));
  });

  it('oldstyle (-o) and --no-sr servers as libnbd sees them', async () => {
    const old = await ours({ backend: ['pattern', '1M'], oldstyle: true });
    const j = JSON.parse(await run(NBDINFO, ['--json', old.uri]));
    expect(j.protocol).toBe('oldstyle');
    expect(j.exports[0]['export-size']).toBe(1024 * 1024);
    const nosr = await ours({ backend: ['memory', '1M'], structuredReplies: false });
    const k = JSON.parse(await run(NBDINFO, ['--json', nosr.uri]));
    expect(k.structured).toBe(false);
    expect(k.exports[0].can_df).toBe(false);
    const dir = tempDir();
    await run(NBDCOPY, [old.uri, join(dir, 'o.img')]);
    const expected = Buffer.alloc(1024 * 1024);
    fillPattern(expected, 0);
    expect(sha(readFileSync(join(dir, 'o.img')))).toBe(sha(expected));
  });

  it('the nbdserve CLI: -e/--description, --run with $uri, exit status, and a file backend', async () => {
    ensureBuilt();
    const dir = tempDir();
    const srv: SpawnedNbdserve = await spawnNbdserve(['-e', 'disk', '--description', 'cli disk', 'memory', '2M'], 'disk');
    cleanups.push(() => srv.stop());
    const j = JSON.parse(await run(NBDINFO, ['--json', srv.uri]));
    expect(j.exports[0]['export-name']).toBe('disk');
    expect(j.exports[0].description).toBe('cli disk');

    const out = await run(process.execPath, [NBDSERVE, '--run', `${NBDINFO} --size "$uri"; test -S "$unixsocket"`, 'null', '7M']);
    expect(out.trim()).toBe(String(7 * 1024 * 1024));
    const r = spawnSync(process.execPath, [NBDSERVE, '--run', 'exit 7', 'memory', '1M']);
    expect(r.status).toBe(7);

    const file = join(dir, 'f.img');
    writeFileSync(file, Buffer.alloc(1024 * 1024, 1));
    const image = Buffer.alloc(1024 * 1024);
    image.fill(0x33, 0, 300_000);
    writeFileSync(join(dir, 'z.img'), image);
    await run(process.execPath, [NBDSERVE, '--run', `${NBDCOPY} "${join(dir, 'z.img')}" "$uri"`, 'file', file]);
    expect(sha(readFileSync(file))).toBe(sha(image));
  });
});
