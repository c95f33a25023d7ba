// Randomised protocol damage: our nbdinfo and nbdcopy talk to a real server (ours, in its
// newstyle/oldstyle, structured/simple, extended-header variants) through a proxy that damages
// the server's bytes once per connection: a flipped bit, a random byte, bytes inserted or
// dropped, or the connection cut, at a random point of the handshake or of the replies. The
// proxy closes a connection that stays silent for a while, as a dead server would. Whatever
// the damage, each tool must end by itself, with exit status 0 and nothing on stderr, or 1 and
// exactly one line (no stack). Data damage NBD cannot detect may pass as a successful copy;
// that is not checked here.
// Replay or widen: MUTATION_SEED=<seed> MUTATION_CASES=<n> npx vitest run test/cli-mutated-replies
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedStarter } from './helpers/embedded.js';
import { chooser, seededCases, generator, randomLayout, writeDisk } from './helpers/generated-disks.js';
import { startDamagingProxy, type Damage } from './helpers/damaging-proxy.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { ensureBuilt, REPO } from './helpers/build.js';
import { hasExactlyOneErrorLine, runAsync } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinary } from './helpers/binaries.js';

const SEED = Number(process.env['MUTATION_SEED'] ?? 20261121);
const CASES = Number(process.env['MUTATION_CASES'] ?? 48);
const SIZE = (1 << 20) + 4097;
/** A connection quiet this long is closed by the proxy, like a server that died. */
const IDLE_MS = 1000;
const TIMEOUT_MS = 45_000;

type Tool = 'nbdinfo' | 'nbdinfo --json' | 'nbdinfo --map' | 'nbdinfo --list' | 'nbdcopy to null:' | 'nbdcopy to file' | 'nbdcopy from file';
/** 'tls': newstyle with TLS required (PSK), so the damage hits encrypted records. */
type Style = 'newstyle' | 'simple replies' | 'no extended headers' | 'oldstyle' | 'tls';

interface Case {
  name: string;
  tool: Tool;
  style: Style;
  damage: Damage;
  /** Where in the server's byte stream the damage lands (the same for every connection). */
  at: number;
  options: string[];
}

function makeCase(index: number, random: () => number): Case {
  const { pick, chance } = chooser(random);
  const tool = pick(['nbdinfo', 'nbdinfo --json', 'nbdinfo --map', 'nbdinfo --list', 'nbdcopy to null:', 'nbdcopy to file', 'nbdcopy from file'] as const);
  const styles: Style[] = ['newstyle', 'newstyle', 'simple replies', 'no extended headers', 'oldstyle'];
  if (withTls) styles.push('tls');
  const style = pick(styles);
  const damage = pick(['flip', 'flip', 'byte', 'insert', 'drop', 'cut'] as const);
  // Half of the time in the handshake (a few hundred bytes), else anywhere in the replies.
  const at = chance(0.5) ? Math.floor(random() * 400) : Math.floor(random() * (SIZE + 64 * 1024));
  const options = tool.startsWith('nbdcopy') && chance(0.5) ? [pick(['-C 1', '--synchronous', '-R 2', '--no-extents'])] : [];
  return { name: `case ${index}: ${tool} ${options.join(' ')}, ${style}, ${damage} at byte ${at}`, tool, style, damage, at, options };
}

const cleanups = teardownAfterEach();
const startServer = embeddedStarter(cleanups);
let dir: string;
let image: string;
let psk: string;
// TLS cases need a PSK file from psktool (gnutls-bin; CI installs it).
const withTls = requireBinary('psktool');

beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir();
  image = path.join(dir, 'disk.img');
  if (withTls) psk = makePskFile(path.join(dir, 'keys.psk'), 'alice').path;
  const random = generator(SEED);
  writeDisk(image, SIZE, randomLayout(SIZE, random), SEED);
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const cases = seededCases(SEED + 1, CASES, makeCase);

describe(`nbdinfo and nbdcopy against damaged server replies (seed ${SEED})`, () => {
  it.each(cases.map((c, i) => [c.name, c, i] as const))('%s', async (_name, c, i) => {
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
    const proxy = await startDamagingProxy(real.socket, socket, { ...c, direction: 'replies' }, generator(SEED + 100 + i), IDLE_MS);
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
  }, TIMEOUT_MS + 15_000);
});
