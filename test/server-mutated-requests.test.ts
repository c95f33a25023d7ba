// Randomised protocol damage, the other way round: libnbd's tools and ours talk to our server
// through a proxy that damages what the client sends once per connection (a flipped bit, a
// random byte, bytes inserted or dropped, the connection cut), in the handshake or in the
// requests. Whatever arrives, the server must not crash or stop serving: after each case a
// clean connection still reads the export's bytes. The tools must end by themselves (the proxy
// closes silent connections), with status 0 or 1.
// Replay or widen: MUTATION_SEED=<seed> MUTATION_CASES=<n> npx vitest run test/server-mutated-requests
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { embeddedStarter } from './helpers/embedded.js';
import { startDamagingProxy, type Damage } from './helpers/damaging-proxy.js';
import { chooser, seededCases, generator, randomLayout, writeDisk } from './helpers/generated-disks.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { ensureBuilt, REPO, LIBNBD_NBDCOPY } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const SEED = Number(process.env['MUTATION_SEED'] ?? 20261121);
const CASES = Number(process.env['MUTATION_CASES'] ?? 40);
const SIZE = (1 << 20) + 4097;
const IDLE_MS = 1000;
const TIMEOUT_MS = 45_000;
const LIBNBD_NBDINFO = '/usr/bin/nbdinfo';

type Style = 'newstyle' | 'simple replies' | 'no extended headers' | 'oldstyle';

interface Case {
  name: string;
  /** Program and arguments; URI stands for the proxy's URI, IMAGE / OUT for files. */
  command: string[];
  style: Style;
  damage: Damage;
  at: number;
  writes: boolean;
}

function makeCase(index: number, random: () => number, withLibnbd: boolean): Case {
  const { pick, chance } = chooser(random);
  const ours = (tool: string) => path.join(REPO, 'bin', tool);
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
  const command = pick(commands);
  const style = pick(['newstyle', 'newstyle', 'simple replies', 'no extended headers', 'oldstyle'] as const);
  const damage = pick(['flip', 'flip', 'byte', 'insert', 'drop', 'cut'] as const);
  // The client's handshake is under ~150 bytes; then come requests of 28-32 bytes each
  // (a read-only run sends a few dozen), plus the data of writes.
  const at = chance(0.5) ? Math.floor(random() * 150) : 150 + Math.floor(random() * (command.includes('IMAGE') ? SIZE : 1500));
  const label = command.map((a) => path.basename(a)).join(' ').replace(/\/usr\/bin\//, '');
  const who = command[0]!.startsWith('/usr/bin/') ? 'libnbd' : 'ours';
  return {
    name: `case ${index}: ${who} ${label}, ${style}, ${damage} at request byte ${at}`,
    command, style, damage, at, writes: command.includes('IMAGE'),
  };
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
  writeDisk(image, SIZE, randomLayout(SIZE, generator(SEED)), SEED);
  imageBytes = fs.readFileSync(image);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const cases = seededCases(SEED + 2, CASES, (i, random) => makeCase(i, random, withLibnbd));

describe(`our server against damaged client requests (seed ${SEED})`, () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const real = await startServer({
      // Writes go to a copy, so the clean read afterwards knows what to expect.
      backend: c.writes ? ['memory', String(SIZE)] : ['file', image],
      readOnly: !c.writes,
      oldstyle: c.style === 'oldstyle',
      structuredReplies: c.style !== 'simple replies',
      extendedHeaders: c.style === 'newstyle',
    });
    const socket = path.join(dir, `proxy-${i}.sock`);
    const proxy = await startDamagingProxy(real.socket, socket, { damage: c.damage, at: c.at, direction: 'requests' }, generator(SEED + 200 + i), IDLE_MS);
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
  }, TIMEOUT_MS + 15_000);
});
