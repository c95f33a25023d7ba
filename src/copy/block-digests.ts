// Digests of an image cut into fixed-size blocks, fed ranges in any order and handed on in
// block order. The block hash (--blkhash) and verification (--verify) both build on it.
import type * as Crypto from 'node:crypto';
import { isZeroRange } from './zero-buffer.js';

/**
 * node:crypto, loaded on first use: every nbdcopy imports this file for its option defaults,
 * and loading crypto is a large share of the start-up of a copy that hashes nothing.
 */
let cryptoModule: typeof Crypto | undefined;
function crypto(): typeof Crypto {
  return (cryptoModule ??= process.getBuiltinModule('node:crypto'));
}

export type HashAlgorithm = 'md5' | 'sha1' | 'sha256' | 'sha512';
export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ['md5', 'sha1', 'sha256', 'sha512'];

/** How an image is hashed: the digest, and the size of the blocks it is cut into. */
export interface BlockHashSpec {
  algorithm: HashAlgorithm;
  /** A power of 2. */
  blockSize: number;
}

export const DEFAULT_BLOCK_HASH: BlockHashSpec = { algorithm: 'sha256', blockSize: 64 * 1024 };

/** One-shot digest; crypto.hash skips creating a Hash object per block where Node has it. */
export function digestOf(algorithm: HashAlgorithm, data: Uint8Array): Buffer {
  const { hash, createHash } = crypto();
  return hash !== undefined
    ? hash(algorithm, data, 'buffer') as unknown as Buffer
    : createHash(algorithm).update(data).digest();
}

/**
 * Receives digests in block order, each block exactly once. `digests` holds `count` digests
 * back to back, or is null for `count` blocks of SIZE zero bytes (never hashed one by one).
 */
export interface DigestSink {
  blocks(first: number, count: number, digests: Buffer | null): void;
}

/** A block only part of which has arrived; the rest is zeroes until filled. */
interface PartialBlock {
  bytes: Buffer;
  filled: number;
}

/** Digests waiting for the blocks before them. */
interface PendingRun {
  count: number;
  digests: Buffer | null;
}

export class BlockDigests {
  readonly digestLength: number;
  /** H(SIZE zero bytes), computed once. */
  readonly zeroDigest: Buffer;
  private readonly partial = new Map<number, PartialBlock>();
  private readonly pending = new Map<number, PendingRun>();
  /** The next block the sink expects. */
  private next = 0;

  /**
   * @param size the image size, or undefined for a stream (its last block is known at finish).
   */
  constructor(
    readonly spec: BlockHashSpec,
    private readonly size: number | undefined,
    private readonly sink: DigestSink,
  ) {
    this.zeroDigest = digestOf(spec.algorithm, Buffer.alloc(spec.blockSize));
    this.digestLength = this.zeroDigest.length;
  }

  /** Length of block `b`: SIZE, or what is left of the image for the last block. */
  private blockLength(b: number): number {
    const s = this.spec.blockSize;
    return this.size === undefined ? s : Math.min(s, this.size - b * s);
  }

  /** The image's bytes at `offset`. Only looked at during the call. */
  data(offset: number, bytes: Uint8Array): void {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.cover(offset, buf.length, buf);
  }

  /** [offset, offset+length) reads as zeroes: none of it is read or hashed. */
  zero(offset: number, length: number): void {
    this.cover(offset, length, null);
  }

  private cover(offset: number, length: number, bytes: Buffer | null): void {
    const s = this.spec.blockSize;
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const b = Math.floor(pos / s);
      const start = b * s;
      const blockEnd = start + this.blockLength(b);
      if (pos > start || end < blockEnd) {
        const to = Math.min(end, blockEnd);
        this.fill(b, pos - start, bytes === null ? null : bytes.subarray(pos - offset, to - offset), to - pos);
        pos = to;
        continue;
      }
      // Whole blocks from here (end <= size, so these are all SIZE bytes long).
      const count = Math.floor((end - pos) / s);
      if (count > 0) {
        this.emit(b, count, bytes === null ? null : this.hashBlocks(bytes, pos - offset, count));
        pos += count * s;
        continue;
      }
      // The image's short last block, whole.
      const len = blockEnd - pos;
      const digest = bytes === null
        ? digestOf(this.spec.algorithm, Buffer.alloc(len))
        : digestOf(this.spec.algorithm, bytes.subarray(pos - offset, pos - offset + len));
      this.emit(b, 1, digest);
      pos += len;
    }
  }

  /** Digests of `count` whole blocks of `bytes` from `at`; all-zero blocks are not hashed. */
  private hashBlocks(bytes: Buffer, at: number, count: number): Buffer | null {
    const s = this.spec.blockSize;
    const n = this.digestLength;
    let out: Buffer | undefined;
    for (let i = 0; i < count; i++) {
      const from = at + i * s;
      const zero = isZeroRange(bytes, from, s);
      if (zero && out === undefined) continue;
      if (out === undefined) {
        // Blocks before this one were all zero.
        out = Buffer.allocUnsafe(count * n);
        for (let j = 0; j < i; j++) this.zeroDigest.copy(out, j * n);
      }
      (zero ? this.zeroDigest : digestOf(this.spec.algorithm, bytes.subarray(from, from + s))).copy(out, i * n);
    }
    return out ?? null;
  }

  private fill(b: number, at: number, bytes: Buffer | null, length: number): void {
    let p = this.partial.get(b);
    if (p === undefined) {
      p = { bytes: Buffer.alloc(this.spec.blockSize), filled: 0 };
      this.partial.set(b, p);
    }
    if (bytes !== null) bytes.copy(p.bytes, at);
    p.filled += length;
    const want = this.blockLength(b);
    if (p.filled < want) return;
    this.partial.delete(b);
    const block = want === p.bytes.length ? p.bytes : p.bytes.subarray(0, want);
    const zero = want === this.spec.blockSize && isZeroRange(block, 0, want);
    this.emit(b, 1, zero ? null : digestOf(this.spec.algorithm, block));
  }

  private emit(first: number, count: number, digests: Buffer | null): void {
    if (first !== this.next) {
      this.pending.set(first, { count, digests });
      return;
    }
    this.sink.blocks(first, count, digests);
    this.next = first + count;
    for (let run = this.pending.get(this.next); run !== undefined; run = this.pending.get(this.next)) {
      this.pending.delete(this.next);
      this.sink.blocks(this.next, run.count, run.digests);
      this.next += run.count;
    }
  }

  /**
   * The image ended after `size` bytes: hands on a stream's last, shorter block. Throws when
   * some range was never covered (a copy that skipped part of the image).
   */
  finish(size: number): void {
    const s = this.spec.blockSize;
    const last = Math.floor(size / s);
    const tail = this.partial.get(last);
    if (this.size === undefined && tail !== undefined && tail.filled === size - last * s) {
      this.partial.delete(last);
      this.emit(last, 1, digestOf(this.spec.algorithm, tail.bytes.subarray(0, tail.filled)));
    }
    const blocks = Math.ceil(size / s);
    if (this.next !== blocks || this.partial.size > 0 || this.pending.size > 0) {
      throw new Error(`block digests: ${blocks} blocks expected, ${this.next} complete in order`
        + ` (${this.partial.size} partial, ${this.pending.size} runs waiting)`);
    }
  }
}

/** The block hash itself: H(H(block_0) ‖ … ‖ H(block_n-1) ‖ le64(size)), as lowercase hex. */
export class CombinedHash implements DigestSink {
  private readonly outer: Crypto.Hash;
  /** Many copies of H(zero block) back to back, so a run of holes is a few update() calls. */
  private zeroRun: Buffer | undefined;

  constructor(readonly spec: BlockHashSpec, private readonly zeroDigest: Buffer) {
    this.outer = crypto().createHash(spec.algorithm);
  }

  blocks(_first: number, count: number, digests: Buffer | null): void {
    if (digests !== null) {
      this.outer.update(digests);
      return;
    }
    const n = this.zeroDigest.length;
    if (this.zeroRun === undefined) {
      this.zeroRun = Buffer.allocUnsafe(1024 * n);
      for (let i = 0; i < 1024; i++) this.zeroDigest.copy(this.zeroRun, i * n);
    }
    for (let left = count; left > 0; left -= 1024) {
      const k = Math.min(left, 1024);
      this.outer.update(k === 1024 ? this.zeroRun : this.zeroRun.subarray(0, k * n));
    }
  }

  /** Lowercase hex; call once, after every block. */
  digest(size: number): string {
    const le = Buffer.alloc(8);
    le.writeBigUInt64LE(BigInt(size));
    return this.outer.update(le).digest('hex');
  }
}

/** Block hash of a whole image in memory: for tests and small inputs. */
export function blockHashOf(image: Uint8Array, spec: BlockHashSpec = DEFAULT_BLOCK_HASH): string {
  let combined: CombinedHash | undefined;
  const digests = new BlockDigests(spec, image.length, { blocks: (f, c, d) => combined!.blocks(f, c, d) });
  combined = new CombinedHash(spec, digests.zeroDigest);
  if (image.length > 0) digests.data(0, image);
  digests.finish(image.length);
  return combined.digest(image.length);
}
