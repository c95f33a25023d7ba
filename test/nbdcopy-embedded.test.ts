// Our nbdcopy against our embedded server: the only server here that speaks extended headers
// (64-bit lengths, 64-bit block status), so this is where those paths of the copy run.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/server/index.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { allocatedBytes, makeSparseFile, noise, regionsMatch } from './helpers/files.js';
import { hasExactlyOneErrorLine, runAsync } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';

const MiB = 1 << 20;
const GiB = 1024 * MiB;
let dir: string;
const { servers } = teardownAfterEach<RunningServer>();

async function serve(backend: string[], extra: Partial<Parameters<typeof startServer>[0]> = {}): Promise<RunningServer> {
  const s = await startServer({ backend, ...extra });
  servers.push(s);
  return s;
}

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('nbdcopy with the embedded server', () => {
  it('round-trips a sparse 5 GiB image with data past 4 GiB (extended headers and without)', async () => {
    const src = path.join(dir, 'src.img');
    const pieces: Array<[number, Buffer]> = [[100, noise(5000, 1)], [4 * GiB + 4096, noise(MiB, 2)], [5 * GiB - 4096, noise(4096, 3)]];
    makeSparseFile(src, 5 * GiB, pieces);
    for (const extendedHeaders of [true, false]) {
      const s = await serve(['memory', '5G'], { extendedHeaders });
      const up = await runAsync(OUR_NBDCOPY, [src, s.uri]);
      expect(up.stderr).toBe('');
      expect(up.status).toBe(0);
      const back = path.join(dir, `back-${extendedHeaders}.img`);
      const down = await runAsync(OUR_NBDCOPY, [s.uri, back]);
      expect(down.status).toBe(0);
      // Hashing 5 GiB is slow: the data regions are checked, and the rest must be holes.
      expect(fs.statSync(back).size).toBe(5 * GiB);
      expect(regionsMatch(back, pieces)).toBe(true);
      expect(allocatedBytes(back)).toBeLessThan(4 * MiB);
      fs.rmSync(back);
    }
    fs.rmSync(src);
  });

  it('pattern export -> file -> memory export, bytes kept; stdout too', async () => {
    const p = await serve(['pattern', String(20 * MiB + 5)]);
    const a = path.join(dir, 'a.img');
    expect((await runAsync(OUR_NBDCOPY, [p.uri, a])).status).toBe(0);
    const m = await serve(['memory', String(20 * MiB + 5)]);
    expect((await runAsync(OUR_NBDCOPY, [a, m.uri])).status).toBe(0);
    const r = await runAsync(OUR_NBDCOPY, [m.uri, '-']);
    expect(r.status).toBe(0);
    expect(r.stdout.equals(fs.readFileSync(a))).toBe(true);
  });

  it('a read-only export as destination fails in one line', async () => {
    const s = await serve(['memory', '1M'], { readOnly: true });
    const r = await runAsync(OUR_NBDCOPY, ['-', s.uri], { input: Buffer.alloc(10) });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/read-only/);
    expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
  });
});
