// Randomised protocol damage: our nbdinfo and nbdcopy talk to a real server (ours, in its
// newstyle/oldstyle, structured/simple, extended-header variants) through a proxy that damages
// the server's bytes once per connection: a flipped bit, a random byte, bytes inserted or
// dropped, or the connection cut, at a random point of the handshake or of the replies. The
// proxy closes a connection that stays silent for a while, as a dead server would. Whatever
// the damage, each tool must end by itself, with exit status 0 and nothing on stderr, or 1 and
// exactly one line (no stack). Data damage NBD cannot detect may pass as a successful copy;
// that is not checked here.
// Cases come from fast-check (test/helpers/property.ts): a failure shrinks to its smallest
// case and prints the FUZZ_SEED / FUZZ_PATH command that replays it; FUZZ_RUNS=<n> widens a run.
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { embeddedStarter } from './helpers/embedded.js';
import { disk, writeDisk, type Disk } from './helpers/disk-layouts.js';
import { property } from './helpers/property.js';
import { startDamagingProxy, type Damage } from './helpers/damaging-proxy.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { ensureBuilt, REPO } from './helpers/build.js';
import { hasExactlyOneErrorLine, runAsync } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinary } from './helpers/binaries.js';

const CASES = 48;
const SIZE = (1 << 20) + 4097;
/** A connection quiet this long is closed by the proxy, like a server that died. */
const IDLE_MS = 1000;
const TIMEOUT_MS = 45_000;

type Tool = 'nbdinfo' | 'nbdinfo --json' | 'nbdinfo --map' | 'nbdinfo --list' | 'nbdcopy to null:' | 'nbdcopy to file' | 'nbdcopy from file';
/** 'tls': newstyle with TLS required (PSK), so the damage hits encrypted records. */
type Style = 'newstyle' | 'simple replies' | 'no extended headers' | 'oldstyle' | 'tls';

interface Case {
  tool: Tool;
  style: Style;
  damage: Damage;
  /** Where in the server's byte stream the damage lands (the same for every connection). */
  at: number;
  /** The damage's detail (which bit, which byte, how many dropped). */
  value: number;
  options: string[];
  /** What the server serves (or, for 'nbdcopy from file', what is copied to it). */
  disk: Disk;
}

const cleanups = teardownAfterEach();
const startServer = embeddedStarter(cleanups);
let dir: string;
let image: string;
let psk: string;
// TLS cases need a PSK file from psktool (gnutls-bin; CI installs it).
const withTls = requireBinary('psktool');

const caseSpec: fc.Arbitrary<Case> = fc.record({
  tool: fc.constantFrom('nbdinfo', 'nbdinfo --json', 'nbdinfo --map', 'nbdinfo --list', 'nbdcopy to null:', 'nbdcopy to file', 'nbdcopy from file') as fc.Arbitrary<Tool>,
  style: fc.constantFrom<Style>('newstyle', 'newstyle', 'simple replies', 'no extended headers', 'oldstyle', ...(withTls ? ['tls' as const] : [])),
  damage: fc.constantFrom<Damage>('flip', 'flip', 'byte', 'insert', 'drop', 'cut'),
  // Half of the time in the handshake (a few hundred bytes), else anywhere in the replies.
  at: fc.oneof({ withCrossShrink: true }, fc.integer({ min: 0, max: 399 }), fc.integer({ min: 0, max: SIZE + 64 * 1024 - 1 })),
  value: fc.nat({ max: 255 }),
  option: fc.option(fc.constantFrom('-C 1', '--synchronous', '-R 2', '--no-extents'), { freq: 2 }),
  disk: disk([SIZE]),
}).map(({ option, ...c }) => ({ ...c, options: c.tool.startsWith('nbdcopy') && option !== null ? [option] : [] }));

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  image = path.join(dir, 'disk.img');
  if (withTls) psk = makePskFile(path.join(dir, 'keys.psk'), 'alice').path;
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const NAME = 'nbdinfo and nbdcopy against damaged server replies';
const cases = property<[Case]>({ file: import.meta.url, name: NAME, runs: CASES, caseMs: TIMEOUT_MS + 15_000, afterEach: cleanups.now });
let i = 0;

describe('generated damage', () => {
  it.prop([caseSpec], cases.parameters)(NAME, async (c) => {
    i++;
    writeDisk(image, c.disk);
    const writes = c.tool === 'nbdcopy from file';
    const real = await startServer({
      backend: writes ? ['memory', String(SIZE)] : ['file', image],
      readOnly: !writes,
      oldstyle: c.style === 'oldstyle',
      structuredReplies: c.style !== 'simple replies',
      extendedHeaders: c.style === 'newstyle' || c.style === 'tls',
      ...(c.style === 'tls' ? { tls: { mode: 'require' as const, pskFile: psk } } : {}),
    });
    const socket = path.join(dir, `proxy-${i}.sock`);
    const proxy = await startDamagingProxy(real.socket, socket, { ...c, direction: 'replies' }, IDLE_MS);
    cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const uri = c.style === 'tls' ? `nbds+unix://alice@/?socket=${socket}&tls-psk-file=${psk}` : `nbd+unix:///?socket=${socket}`;
    const out = path.join(dir, `out-${i}.img`);
    const [tool, ...flags] = c.tool.split(' ');
    const args = tool === 'nbdinfo' ? [...flags, uri]
      : c.tool === 'nbdcopy to null:' ? [uri, 'null:']
        : c.tool === 'nbdcopy to file' ? [uri, out]
          : [image, uri];
    const r = await runAsync(path.join(REPO, 'bin', tool!), [...c.options.flatMap((o) => o.split(' ')), ...args], { timeout: TIMEOUT_MS });
    fs.rmSync(out, { force: true });

    expect(r.status, `${tool} did not end within ${TIMEOUT_MS} ms`).not.toBeNull();
    expect([0, 1], r.stderr).toContain(r.status);
    if (r.status === 0) expect(r.stderr).toBe('');
    else expect(hasExactlyOneErrorLine(r.stderr, tool), r.stderr).toBe(true);
  }, cases.timeout);
});
