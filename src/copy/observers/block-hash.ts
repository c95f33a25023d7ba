// Observer that digests every block of the source as the copy reads it (holes are never
// read), for --blkhash (the combined hash) and --verify (the digests of each block).
import type { CopyEnd, CopyObserver, CopyStart } from '../observer.js';
import { BlockDigests, CombinedHash, type BlockHashSpec, type DigestSink } from '../block-digests.js';

export class BlockHashObserver implements CopyObserver {
  private digests: BlockDigests | undefined;
  private combined: CombinedHash | undefined;
  private readonly sinks: DigestSink[] = [];
  /** The block hash as lowercase hex, once the copy has ended (when `combine` was asked). */
  hash: string | undefined;

  /** @param combine compute the block hash itself, not only the digests handed to sinks. */
  constructor(readonly spec: BlockHashSpec, private readonly combine = true) {}

  /** Another consumer of the block digests, in block order (verification). */
  addSink(sink: DigestSink): void {
    this.sinks.push(sink);
  }

  start(copy: CopyStart): void {
    const sinks = this.sinks;
    const fanOut: DigestSink = {
      blocks: (first, count, digests) => {
        this.combined?.blocks(first, count, digests);
        for (const s of sinks) s.blocks(first, count, digests);
      },
    };
    this.digests = new BlockDigests(this.spec, copy.size, fanOut);
    if (this.combine) this.combined = new CombinedHash(this.spec, this.digests.zeroDigest);
  }

  data(offset: number, data: Buffer): void {
    this.digests!.data(offset, data);
  }

  zero(offset: number, length: number): void {
    this.digests!.zero(offset, length);
  }

  end(copy: CopyEnd): void {
    this.digests!.finish(copy.bytes);
    this.hash = this.combined?.digest(copy.bytes);
  }
}
