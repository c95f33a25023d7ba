// Randomised model test of the client and the servers: rounds of generated requests (writes,
// zeroes with and without NO_HOLE / FUA, trims, caches, flushes, reads, block status), each
// round's requests sent at once on non-overlapping ranges, against a Buffer that models the
// disk. Reads must return the model's bytes, a block-status "zero" extent must read as zeroes,
// and the whole disk must match at the end. Servers: ours in every protocol style (extended
// headers, structured replies, simple replies, oldstyle), nbdkit and qemu-nbd.
// Trimmed bytes are unspecified by the protocol: the model forgets them until rewritten.
// Cases come from fast-check (test/helpers/property.ts): a failure shrinks to fewer requests
// and prints the FUZZ_SEED / FUZZ_PATH command that replays it; FUZZ_RUNS=<n> widens a run.
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { afterAll, describe, expect } from 'vitest';
import { connect, type NbdClient } from '../src/client/index.js';
import { STATE_ZERO } from '../src/protocol/constants.js';
import { embeddedStarter } from './helpers/embedded.js';
import { chance, property } from './helpers/property.js';
import { startNbdkit, startQemuNbd } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { requireBinaries } from './helpers/binaries.js';
import { noise } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const CASES = 24;
const ROUNDS = 12;

type Server = 'extended' | 'structured' | 'simple' | 'oldstyle' | 'nbdkit' | 'qemu-nbd';
type Op = 'write' | 'zero' | 'trim' | 'cache' | 'read' | 'status';

interface Request {
  op: Op;
  offset: number;
  length: number;
  fua: boolean;
  noHole: boolean;
  seed: number;
}

interface Case {
  server: Server;
  size: number;
  /** Rounds of requests on non-overlapping ranges, sent together; a flush between rounds. */
  rounds: Request[][];
}

const haveExternal = requireBinaries('nbdkit', 'qemu-nbd');

/** A request for one piece of a round, its range still to be placed. */
const requestSpec = fc.record({
  op: fc.constantFrom('write', 'write', 'zero', 'trim', 'cache', 'read', 'read', 'status') as fc.Arbitrary<Op>,
  // Inside the piece, an unaligned sub-range now and then (servers must take those).
  trim: fc.oneof({ withCrossShrink: true }, { weight: 7, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 })) }),
  fua: chance(0.3),
  noHole: chance(0.5),
  seed: fc.nat({ max: 1e9 }),
});

type RequestSpec = typeof requestSpec extends fc.Arbitrary<infer T> ? T : never;

/** A round: cuts at sector boundaries (taken modulo the disk's sectors), each piece carrying a request or not. */
const roundSpec = fc.array(fc.record({
  cut: fc.nat(),
  request: fc.oneof({ withCrossShrink: true }, { weight: 2, arbitrary: fc.constant(undefined) }, { weight: 3, arbitrary: requestSpec }),
}), { minLength: 1, maxLength: 12 });

/** Places each round's requests on the pieces of [0, size) its cuts make. */
function placeRound(size: number, spec: Array<{ cut: number; request: RequestSpec | undefined }>): Request[] {
  const cuts = new Set<number>([0, size]);
  for (const { cut } of spec) cuts.add(512 * (cut % (size / 512)));
  const edges = [...cuts].sort((a, b) => a - b);
  const round: Request[] = [];
  for (let i = 0; i + 1 < edges.length; i++) {
    const q = spec[i]?.request;
    if (q === undefined) continue;
    let offset = edges[i]!;
    let end = edges[i + 1]!;
    if (q.trim !== undefined && end - offset > 2) {
      offset += q.trim[0];
      end -= q.trim[1];
      if (end <= offset) continue;
    }
    round.push({ op: q.op, offset, length: end - offset, fua: q.fua, noHole: q.noHole, seed: q.seed });
  }
  return round;
}

const caseSpec: fc.Arbitrary<Case> = fc.record({
  server: fc.constantFrom(...(haveExternal
    ? ['extended', 'structured', 'simple', 'oldstyle', 'nbdkit', 'qemu-nbd'] as const
    : ['extended', 'structured', 'simple', 'oldstyle'] as const)),
  // Multiples of 512 so qemu-nbd exports exactly this size.
  size: fc.constantFrom(1, 7, 128, 2048, 8191).map((n) => 512 * n),
  rounds: fc.array(roundSpec, { minLength: ROUNDS, maxLength: ROUNDS }),
}).map(({ server, size, rounds }) => ({ server, size, rounds: rounds.map((r) => placeRound(size, r)) }));

const cleanups = teardownAfterEach();
const startServer = embeddedStarter(cleanups);
let dir: string | undefined;
let images = 0;
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function open(c: Case): Promise<NbdClient> {
  let uri: string;
  if (c.server === 'nbdkit' || c.server === 'qemu-nbd') {
    dir ??= makeTempDir();
    let s;
    if (c.server === 'nbdkit') {
      s = await startNbdkit(['memory', String(c.size)]);
    } else {
      const image = path.join(dir, `model-${process.pid}-${++images}.img`);
      fs.writeFileSync(image, '');
      fs.truncateSync(image, c.size);
      s = await startQemuNbd(['-f', 'raw', image]);
    }
    cleanups.push(() => s.stop());
    uri = s.uri;
  } else {
    const s = await startServer({
      backend: ['memory', String(c.size)],
      oldstyle: c.server === 'oldstyle',
      structuredReplies: c.server !== 'simple',
      extendedHeaders: c.server === 'extended',
    });
    uri = s.uri;
  }
  const client = await connect(uri);
  cleanups.push(() => client.close());
  return client;
}

const NAME = 'the client and the servers against a model disk';
const cases = property<[Case]>({ file: import.meta.url, name: NAME, runs: CASES, caseMs: 60_000, afterEach: cleanups.now });

describe('generated requests', () => {
  it.prop([caseSpec], cases.parameters)(NAME, async (c) => {
    const client = await open(c);
    const info = client.export;
    const model = Buffer.alloc(c.size);
    // Bytes whose content the protocol leaves open (trimmed and not written since).
    const unknown = new Uint8Array(c.size);
    const canStatus = client.connection.metaContexts.includes('base:allocation');
    const matches = (got: Buffer, offset: number): boolean =>
      got.every((b, i) => unknown[offset + i] === 1 || b === model[offset + i]);

    for (const round of c.rounds) {
      const checks: Array<() => void> = [];
      await Promise.all(round.map(async (q) => {
        switch (q.op) {
          case 'write': {
            const data = noise(q.length, q.seed);
            await client.pwrite(data, q.offset, { fua: q.fua && info.canFua });
            data.copy(model, q.offset);
            unknown.fill(0, q.offset, q.offset + q.length);
            return;
          }
          case 'zero':
            if (!info.canZero) return;
            await client.zero(q.length, q.offset, { fua: q.fua && info.canFua, noHole: q.noHole });
            model.fill(0, q.offset, q.offset + q.length);
            unknown.fill(0, q.offset, q.offset + q.length);
            return;
          case 'trim':
            if (!info.canTrim) return;
            await client.trim(q.length, q.offset, { fua: q.fua && info.canFua });
            unknown.fill(1, q.offset, q.offset + q.length);
            return;
          case 'cache':
            if (info.canCache) await client.cache(q.length, q.offset);
            return;
          case 'read': {
            const got = Buffer.alloc(q.length);
            await client.pread(got, q.offset);
            checks.push(() => expect(matches(got, q.offset), `read [${q.offset}, +${q.length})`).toBe(true));
            return;
          }
          case 'status': {
            if (!canStatus) return;
            const extents = (await client.blockStatus(q.length, q.offset)).get('base:allocation') ?? [];
            checks.push(() => {
              let at = q.offset;
              for (const e of extents) {
                const end = Math.min(at + e.length, q.offset + q.length);
                if ((e.flags & STATE_ZERO) !== 0) {
                  const zeroes = model.subarray(at, end).every((b, i) => b === 0 || unknown[at + i] === 1);
                  expect(zeroes, `extent [${at}, ${end}) said zero`).toBe(true);
                }
                at = end;
                if (at >= q.offset + q.length) break;
              }
              expect(at, 'extents covered the request').toBeGreaterThan(q.offset);
            });
            return;
          }
        }
      }));
      // Reads and statuses in a round only touch their own range, so they are checked after it.
      for (const check of checks) check();
      if (info.canFlush) await client.flush();
    }
    const whole = Buffer.alloc(c.size);
    await client.pread(whole, 0);
    expect(matches(whole, 0), 'the whole disk matches the model').toBe(true);
  }, cases.timeout);
});
