// Done ranges and the checkpoint file of resumable copies (--checkpoint), without a copy.
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { afterAll, describe, expect } from 'vitest';
import { DoneRanges } from '../src/copy/done-ranges.js';
import { identityMismatch, readCheckpoint, writeCheckpoint, type CopyIdentity } from '../src/copy/checkpoint-journal.js';
import { property } from './helpers/property.js';
import { makeTempDir } from './helpers/temp.js';

const dir = makeTempDir('nbd-checkpoint-');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A disk's size, up to 40 ranges on it added in any order, and a range to ask what is missing in. */
const rangesCase = fc.record({
  size: fc.integer({ min: 1, max: 5000 }),
  adds: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 300 })), { minLength: 1, maxLength: 40, size: 'max' }),
  query: fc.tuple(fc.nat(), fc.nat()),
}).map(({ size, adds, query: [qo, ql] }) => {
  const o = qo % size;
  return {
    size,
    adds: adds.map(([ao, al]): [number, number] => [ao % size, Math.min(size - (ao % size), al)]),
    query: [o, ql % (size - o)] as [number, number],
  };
});

const RANGES_NAME = 'merges ranges added in any order and reports what is missing';
const rangesCases = property<[{ size: number; adds: Array<[number, number]>; query: [number, number] }]>({
  file: import.meta.url, name: RANGES_NAME, runs: 30, caseMs: 10_000, biased: true,
});

describe('DoneRanges', () => {
  it.prop([rangesCase], rangesCases.parameters)(RANGES_NAME, ({ size, adds, query }) => {
    const model = new Uint8Array(size);
    const d = new DoneRanges();
    for (const [o, l] of adds) {
      d.add(o, l);
      model.fill(1, o, o + l);
    }
    const ranges = d.ranges();
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]![0]).toBeGreaterThan(ranges[i - 1]![1]);
    expect(d.bytes).toBe(model.reduce((a, b) => a + b, 0));
    const back = new Uint8Array(size);
    for (const [s, e] of ranges) back.fill(1, s, e);
    expect(back).toEqual(model);
    const [o, l] = query;
    const gaps = new Uint8Array(size);
    for (const [s, e] of d.missing(o, l)) gaps.fill(1, s, e);
    const want = model.map((m, i) => (i >= o && i < o + l && m === 0 ? 1 : 0));
    expect(gaps).toEqual(want);
  }, rangesCases.timeout);
});

describe('checkpoint file', () => {
  const identity: CopyIdentity = {
    source: { name: 'nbd+unix:///?socket=/s', size: 1 << 30 },
    destination: { name: '/tmp/out.img', size: 1 << 30 },
    options: { allocated: false, sparse: 4096 },
  };

  it('round-trips and is replaced whole', async () => {
    const file = path.join(dir, 'a.ckpt');
    expect(await readCheckpoint(file)).toBeUndefined();
    await writeCheckpoint(file, { identity, done: [[0, 4096], [8192, 65536]] });
    await writeCheckpoint(file, { identity, done: [[0, 65536]] });
    expect(await readCheckpoint(file)).toEqual({ identity, done: [[0, 65536]] });
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('a.ckpt'))).toEqual(['a.ckpt']);
  });

  it('refuses a damaged file and names the first difference of identity', async () => {
    const file = path.join(dir, 'b.ckpt');
    fs.writeFileSync(file, '{"format":"nbd-toolkit checkpoint 1","identity":');
    await expect(readCheckpoint(file)).rejects.toThrow(/not a checkpoint file/);
    fs.writeFileSync(file, JSON.stringify({ format: 'nbd-toolkit checkpoint 1', identity, done: [[10, 5]] }));
    await expect(readCheckpoint(file)).rejects.toThrow(/not a checkpoint file/);
    expect(identityMismatch(identity, identity)).toBeUndefined();
    expect(identityMismatch(identity, { ...identity, source: { ...identity.source, size: 5 } }))
      .toBe(`the source size was ${1 << 30}, it is now 5`);
    expect(identityMismatch(identity, { ...identity, destination: { ...identity.destination, name: 'x' } }))
      .toBe('it is for destination "/tmp/out.img", not "x"');
    expect(identityMismatch(identity, { ...identity, options: { allocated: true, sparse: 4096 } }))
      .toBe('it was made with allocated=false, this copy has allocated=true');
  });

});

describe('removing a checkpoint', () => {
  it('also removes new versions a killed run left half written, and nothing else', async () => {
    const { removeCheckpoint } = await import('../src/copy/checkpoint-journal.js');
    const sub = path.join(dir, 'rm');
    fs.mkdirSync(sub);
    for (const name of ['x.ckpt', 'x.ckpt.123.4.tmp', 'x.ckpt.9.tmp', 'y.ckpt.1.2.tmp', 'xxckpt.1.2.tmp']) fs.writeFileSync(path.join(sub, name), '');
    await removeCheckpoint(path.join(sub, 'x.ckpt'));
    expect(fs.readdirSync(sub).sort()).toEqual(['x.ckpt.9.tmp', 'xxckpt.1.2.tmp', 'y.ckpt.1.2.tmp']);
  });
});
