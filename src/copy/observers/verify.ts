// Observer for --verify: keeps a digest of every source block as the copy reads it, then,
// once everything is written and flushed, reads the destination back (its holes without
// reading them) and names the first block that differs.
import type { CopyEnd, CopyObserver, CopyStart } from '../observer.js';
import type { Endpoint } from '../endpoint.js';
import { NbdError } from '../../protocol/errors.js';
import { BlockDigests, type BlockHashSpec, type DigestSink } from '../block-digests.js';
import type { BlockHashObserver } from './block-hash.js';

/** Bytes of each digest kept: plenty to tell blocks apart, half the memory of sha256's. */
const KEPT = 16;
/** Bytes read back per request, and requests in flight while reading back. */
const READ_SIZE = 1024 * 1024;
const READS_IN_FLIGHT = 8;
/** Extents asked for at once while reading back. */
const EXTENT_WINDOW = 1024 * 1024 * 1024;

/** Digests of the source, in block order, a few bytes each; runs of zero blocks take none. */
class DigestRecord implements DigestSink {
  private readonly firsts: number[] = [];
  private readonly counts: number[] = [];
  private readonly kept: Array<Buffer | null> = [];
  private cursor = 0;

  constructor(private readonly digestLength: number) {}

  blocks(first: number, count: number, digests: Buffer | null): void {
    if (digests === null) {
      this.push(first, count, null);
      return;
    }
    const out = Buffer.allocUnsafe(count * KEPT);
    for (let i = 0; i < count; i++) digests.copy(out, i * KEPT, i * this.digestLength, i * this.digestLength + KEPT);
    this.push(first, count, out);
  }

  private push(first: number, count: number, kept: Buffer | null): void {
    const n = this.kept.length - 1;
    // Neighbouring zero runs (holes cut into windows) become one.
    if (kept === null && n >= 0 && this.kept[n] === null && this.firsts[n]! + this.counts[n]! === first) {
      this.counts[n]! += count;
      return;
    }
    this.firsts.push(first);
    this.counts.push(count);
    this.kept.push(kept);
  }

  /** True when block `b` of the destination, digest `digest` (null: all zero), matches. Asked in order. */
  matches(b: number, digest: Buffer | null, at: number, zeroDigest: Buffer): boolean {
    while (this.cursor < this.firsts.length && this.firsts[this.cursor]! + this.counts[this.cursor]! <= b) this.cursor++;
    const i = this.cursor;
    const kept = this.kept[i];
    if (i >= this.firsts.length || kept === undefined) return false;
    const want = kept === null ? zeroDigest : kept.subarray((b - this.firsts[i]!) * KEPT, (b - this.firsts[i]!) * KEPT + KEPT);
    const got = digest ?? zeroDigest;
    return got.compare(want, 0, KEPT, at, at + KEPT) === 0;
  }
}

export class VerifyObserver implements CopyObserver {
  private readonly record: DigestRecord;
  private size: number | undefined;

  /** @param digests the observer digesting the source; this one adds itself as a consumer. */
  constructor(private readonly digests: BlockHashObserver, private readonly log?: (line: string) => void) {
    const probe = new BlockDigests(digests.spec, 0, { blocks: () => {} });
    this.record = new DigestRecord(probe.digestLength);
    digests.addSink(this.record);
  }

  start(copy: CopyStart): void {
    if (copy.destination.sequential) {
      throw new NbdError('EINVAL', `verify: ${copy.destination.name} cannot be read back (a pipe or stream)`);
    }
    this.size = copy.size;
  }

  async end(copy: CopyEnd): Promise<void> {
    const size = this.size ?? copy.bytes;
    const started = performance.now();
    await readBack(copy.destination, size, this.digests.spec, this.record);
    this.log?.(`verify: ${size} bytes of ${copy.destination.name} match the source`
      + ` (read back in ${((performance.now() - started) / 1000).toFixed(3)} s)`);
  }
}

/** Reads [0, size) of `destination`, digesting it like the source, comparing block by block. */
async function readBack(destination: Endpoint, size: number, spec: BlockHashSpec, record: DigestRecord): Promise<void> {
  const s = spec.blockSize;
  const checker = new Comparison(record, s, size);
  const digests = new BlockDigests(spec, size, checker);
  checker.zeroDigest = digests.zeroDigest;
  checker.digestLength = digests.digestLength;
  const align = Math.max(1, destination.minimumBlockSize);
  const max = Math.max(align, Math.min(destination.maximumBlockSize, 32 * 1024 * 1024));
  const readSize = Math.max(align, Math.min(max - (max % align), READ_SIZE));
  let failed: unknown;
  const inFlight = new Set<Promise<void>>();
  let turn = 0;
  const launch = (offset: number, length: number): void => {
    const conn = turn++ % Math.max(1, destination.connections);
    const p: Promise<void> = (async () => {
      const buffer = Buffer.allocUnsafe(length);
      const n = await destination.read(buffer, offset, conn);
      if (n < length) throw new NbdError('EIO', `verify: ${destination.name}: unexpected end of data at offset ${offset + n}`);
      digests.data(offset, buffer);
    })().catch((err: unknown) => {
      failed ??= err;
    }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const readData = async (from: number, to: number): Promise<void> => {
    for (let o = from; o < to && failed === undefined; o += readSize) {
      while (inFlight.size >= READS_IN_FLIGHT) await Promise.race(inFlight);
      launch(o, Math.min(readSize, to - o));
    }
  };
  try {
    for (let at = 0; at < size && failed === undefined;) {
      const end = Math.min(size, at + EXTENT_WINDOW);
      const extents = destination.canExtents ? await destination.extents(at, end - at, 0) : [];
      let pos = at;
      for (const e of extents) {
        if (e.offset !== pos || e.length <= 0 || failed !== undefined) break;
        const to = Math.min(end, e.offset + e.length);
        if (e.zero) digests.zero(pos, to - pos);
        else await readData(pos, to);
        pos = to;
        if (pos >= end) break;
      }
      // No usable extents: the window is read as data. Extents that stop short are asked
      // for again from where they stopped.
      if (pos === at) {
        await readData(at, end);
        pos = end;
      }
      at = pos;
    }
  } catch (err) {
    failed ??= err;
  }
  await Promise.all(inFlight);
  if (failed !== undefined) throw failed;
  digests.finish(size);
}

/** Compares the destination's block digests, in block order, with the source's. */
class Comparison implements DigestSink {
  zeroDigest: Buffer = Buffer.alloc(0);
  digestLength = 0;

  constructor(private readonly record: DigestRecord, private readonly blockSize: number, private readonly size: number) {}

  blocks(first: number, count: number, digests: Buffer | null): void {
    for (let i = 0; i < count; i++) {
      const b = first + i;
      if (this.record.matches(b, digests, digests === null ? 0 : i * this.digestLength, this.zeroDigest)) continue;
      const length = Math.min(this.blockSize, this.size - b * this.blockSize);
      throw new NbdError('EIO', `verify: destination differs from source at offset ${b * this.blockSize} (block of ${length} bytes)`);
    }
  }
}
