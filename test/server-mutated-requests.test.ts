// Randomised protocol damage, the other way round: libnbd's tools and ours talk to our server
// through a proxy that damages what the client sends once per connection (a flipped bit, a
// random byte, bytes inserted or dropped, the connection cut), in the handshake or in the
// requests. Whatever arrives, the server must not crash or stop serving: after each case a
// clean connection still reads the export's bytes. The tools must end by themselves (the proxy
// closes silent connections), with status 0 or 1.
// Cases come from fast-check (test/helpers/property.ts): a failure shrinks to its smallest
// case and prints the FUZZ_SEED / FUZZ_PATH command that replays it; FUZZ_RUNS=<n> widens a run.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { connect } from '../src/client/index.js';
import { embeddedStarter } from './helpers/embedded.js';
import { startDamagingProxy, type Damage } from './helpers/damaging-proxy.js';
import { disk, writeDisk, type Disk } from './helpers/disk-layouts.js';
import { property } from './helpers/property.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { ensureBuilt, REPO, LIBNBD_NBDCOPY } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const CASES = 40;
const SIZE = (1 << 20) + 4097;
const IDLE_MS = 1000;
const TIMEOUT_MS = 45_000;
const LIBNBD_NBDINFO = '/usr/bin/nbdinfo';

type Style = 'newstyle' | 'simple replies' | 'no extended headers' | 'oldstyle';

interface Case {
  /** Program and arguments; URI stands for the proxy's URI, IMAGE / OUT for files. */
  command: string[];
  style: Style;
  damage: Damage;
  at: number;
  /** The damage's detail (which bit, which byte, how many dropped). */
  value: number;
  writes: boolean;
  /** What the server serves (or, when the command writes, what is copied to it). */
  disk: Disk;
}

const ours = (tool: string): string => path.join(REPO, 'bin', tool);

function caseSpec(withLibnbd: boolean): fc.Arbitrary<Case> {
  const commands: string[][] = [
    [ours('nbdinfo'), '--json', 'URI'],
    [ours('nbdinfo'), '--map', 'URI'],
    [ours('nbdcopy'), 'URI', 'OUT'],
    [ours('nbdcopy'), 'IMAGE', 'URI'],
    ...(withLibnbd ? [
      [LIBNBD_NBDINFO, '--json', 'URI'],
      [LIBNBD_NBDINFO, '--map', 'URI'],
      [LIBNBD_NBDCOPY, 'URI', 'OUT'],
      [LIBNBD_NBDCOPY, 'IMAGE', 'URI'],
    ] : []),
  ];
  return fc.record({
    command: fc.constantFrom(...commands),
    style: fc.constantFrom<Style>('newstyle', 'newstyle', 'simple replies', 'no extended headers', 'oldstyle'),
    damage: fc.constantFrom<Damage>('flip', 'flip', 'byte', 'insert', 'drop', 'cut'),
    // The client's handshake is under ~150 bytes; then come requests of 28-32 bytes each
    // (a read-only run sends a few dozen), plus the data of writes. `after` is taken modulo
    // how much the command sends.
    inHandshake: fc.boolean(),
    at: fc.nat({ max: 149 }),
    after: fc.nat({ max: SIZE - 1 }),
    value: fc.nat({ max: 255 }),
    disk: disk([SIZE]),
  }).map(({ command, inHandshake, at, after, ...c }) => {
    const writes = command.includes('IMAGE');
    return { ...c, command, writes, at: inHandshake ? at : 150 + (after % (writes ? SIZE : 1500)) };
  });
}

function run(argv: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', env: { ...process.env, NBD_DEBUG: '' } });
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve(status);
    });
  });
}

const withLibnbd = requireBinaries(LIBNBD_NBDINFO, LIBNBD_NBDCOPY);
const cleanups = teardownAfterEach();
const startServer = embeddedStarter(cleanups);
let dir: string;
let image: string;
let imageBytes: Buffer;

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  image = path.join(dir, 'disk.img');
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const NAME = 'our server against damaged client requests';
const cases = property<[Case]>({ file: import.meta.url, name: NAME, runs: CASES, caseMs: TIMEOUT_MS + 15_000, afterEach: cleanups.now });
let i = 0;

describe('generated damage', () => {
  it.prop([caseSpec(withLibnbd)], cases.parameters)(NAME, async (c) => {
    i++;
    writeDisk(image, c.disk);
    imageBytes = fs.readFileSync(image);
    const real = await startServer({
      // Writes go to a copy, so the clean read afterwards knows what to expect.
      backend: c.writes ? ['memory', String(SIZE)] : ['file', image],
      readOnly: !c.writes,
      oldstyle: c.style === 'oldstyle',
      structuredReplies: c.style !== 'simple replies',
      extendedHeaders: c.style === 'newstyle',
    });
    const socket = path.join(dir, `proxy-${i}.sock`);
    const proxy = await startDamagingProxy(real.socket, socket, { damage: c.damage, at: c.at, value: c.value, direction: 'requests' }, IDLE_MS);
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const out = path.join(dir, `out-${i}.img`);
    const argv = c.command.map((a) => (a === 'URI' ? `nbd+unix:///?socket=${socket}` : a === 'IMAGE' ? image : a === 'OUT' ? out : a));

    const status = await run(argv);
    fs.rmSync(out, { force: true });
    expect(status, `${argv[0]} did not end within ${TIMEOUT_MS} ms`).not.toBeNull();
    expect([0, 1]).toContain(status);

    // The server still answers a clean client, with the right bytes when nobody wrote.
    const client = await connect(`nbd+unix:///?socket=${real.socket}`);
    try {
      const head = Buffer.alloc(65536);
      await client.pread(head, 0);
      if (!c.writes) expect(head.equals(imageBytes.subarray(0, 65536))).toBe(true);
    } finally {
      await client.close();
    }
  }, cases.timeout);
});
