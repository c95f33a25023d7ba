// Randomised differential test of nbdinfo's maps: generated disks (data, written zeroes,
// holes, odd sizes) served by nbdkit's file plugin, by qemu-nbd and by our server, described by
// our bin/nbdinfo and by libnbd's /usr/bin/nbdinfo with the map modes (--map, --totals,
// --json) and the plain description. Output bytes and exit codes must be the same.
// Replay or widen: NBDINFO_MAP_SEED=<seed> NBDINFO_MAP_CASES=<n> npx vitest run test/nbdinfo-map-random
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runTool } from './helpers/run-tool.js';
import { requireBinaries, startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { REPO, spawnNbdserve, type SpawnedNbdserve } from './helpers/embedded.js';
import { chooser, describeLayout, generator, randomLayout, writeDisk, type Segment } from './helpers/generated-disks.js';
import { tempDir } from './copy-helpers.js';

const MiB = 1 << 20;
const SEED = Number(process.env['NBDINFO_MAP_SEED'] ?? 20261121);
const CASES = Number(process.env['NBDINFO_MAP_CASES'] ?? 24);
const OURS = path.join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const MODES = [['--map'], ['--map', '--totals'], ['--map', '--json'], ['--map', '--totals', '--json'], [], ['--json']];

type Server = 'nbdkit' | 'qemu-nbd' | 'nbdserve';

interface Case {
  name: string;
  size: number;
  segments: Segment[];
  server: Server;
}

function makeCase(index: number, random: () => number): Case {
  const { pick } = chooser(random);
  const size = pick([0, 1, 4097, 65536, 3 * MiB + 12_345, 24 * MiB, 40 * MiB + 511]);
  const segments = randomLayout(size, random);
  const server = pick(['nbdkit', 'nbdkit', 'qemu-nbd', 'nbdserve'] as const);
  return { name: `case ${index}: ${server}, ${size} bytes [${describeLayout(segments)}]`, size, segments, server };
}

const have = requireBinaries('nbdkit', 'qemu-nbd', THEIRS);
const stops: Array<() => Promise<void>> = [];
let dir: string;

async function serve(c: Case, image: string): Promise<string> {
  switch (c.server) {
    case 'nbdkit': {
      const s: RunningServer = await startNbdkit(['-r', 'file', image]);
      stops.push(() => s.stop());
      return s.uri;
    }
    case 'qemu-nbd': {
      const s: RunningServer = await startQemuNbd(['-r', '-f', 'raw', image]);
      stops.push(() => s.stop());
      return s.uri;
    }
    case 'nbdserve': {
      const s: SpawnedNbdserve = await spawnNbdserve(['-r', 'file', image]);
      stops.push(() => s.stop());
      return s.uri;
    }
  }
}

beforeAll(() => {
  if (have) dir = tempDir();
});
afterEach(async () => {
  await Promise.all(stops.splice(0).map((stop) => stop()));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const random = generator(SEED);
const cases = Array.from({ length: CASES }, (_, i) => makeCase(i, random));

describe.skipIf(!have)(`nbdinfo maps against libnbd's on generated disks (seed ${SEED})`, () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
    const image = path.join(dir, `disk-${i}.img`);
    writeDisk(image, c.size, c.segments, SEED + i * 1000);
    const uri = await serve(c, image);
    for (const mode of MODES) {
      const [ours, theirs] = await Promise.all([runTool(OURS, [...mode, uri]), runTool(THEIRS, [...mode, uri])]);
      expect(ours.stdout, `stdout of nbdinfo ${mode.join(' ')}`).toBe(theirs.stdout);
      expect(ours.code, `exit code of nbdinfo ${mode.join(' ')}: ${ours.stderr}`).toBe(theirs.code);
    }
    fs.rmSync(image);
  }, 60_000);
});
