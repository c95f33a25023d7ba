// Assembles the integrity features a copy asked for (block hash, verification, checkpoint,
// dirty bitmap): checks them against the two sides before anything is written, and turns
// them into observers and a range source for the engine, which knows none of them by name.
import path from 'node:path';
import { NbdError } from '../protocol/errors.js';
import type { DestinationHints, Endpoint } from './endpoint.js';
import type { CopyObserver } from './observer.js';
import type { EndpointSpec } from './spec.js';
import { describeSpec } from './spec.js';
import type { RangeSource } from './range-source.js';
import { DEFAULT_BLOCK_HASH, type BlockHashSpec } from './block-digests.js';
import { DoneRanges } from './done-ranges.js';
import { identityMismatch, readCheckpoint, type CopyIdentity } from './checkpoint-journal.js';
import { dirtyBitmapContext, DirtyBitmapRanges } from './dirty-bitmap.js';
import { BlockHashObserver } from './observers/block-hash.js';
import { VerifyObserver } from './observers/verify.js';
import { CheckpointObserver } from './observers/checkpoint.js';
import { tallyObserver } from './observers/tally.js';
import type { IntegrityOptions } from './integrity-options.js';

export type { IntegrityOptions };

/** What a side is, before it is opened: a spec, or an endpoint the caller opened. */
export type SideDescription = EndpointSpec | Endpoint;

function isSpec(side: SideDescription): side is EndpointSpec {
  return typeof (side as EndpointSpec).kind === 'string' && typeof (side as Endpoint).read !== 'function';
}

/** Verification keeps 16 bytes per block: past 256 GiB, blocks grow so that stays under 64 MiB. */
const MAX_VERIFY_BLOCKS = 4 * 1024 * 1024;

/**
 * Refuses, before anything is opened, what cannot work with these two sides. Throws one
 * NbdError (EINVAL) naming the option.
 */
export function checkIntegrityRequest(source: SideDescription, destination: SideDescription, o: IntegrityOptions): void {
  const dstKind = isSpec(destination) ? destination.kind : undefined;
  const srcKind = isSpec(source) ? source.kind : undefined;
  const refuse = (message: string): never => {
    throw new NbdError('EINVAL', message);
  };
  if (o.verify && (dstKind === 'null' || dstKind === 'stdio')) {
    refuse(`--verify: ${dstKind === 'null' ? 'null:' : 'stdout'} cannot be read back`);
  }
  if (o.checkpoint !== undefined) {
    if (dstKind === 'stdio' || dstKind === 'null') refuse(`--checkpoint: a copy to ${dstKind === 'null' ? 'null:' : 'stdout'} cannot be resumed`);
    if (srcKind === 'stdio') refuse('--checkpoint: a copy from stdin cannot be resumed');
    if (o.blockHash !== undefined || o.verify) {
      refuse('--checkpoint cannot be combined with --blkhash or --verify (a resumed copy does not read what was done before)');
    }
    if (o.dirtyBitmap !== undefined) refuse('--checkpoint cannot be combined with --dirty-bitmap');
  }
  if (o.dirtyBitmap !== undefined) {
    if (dstKind === 'stdio' || dstKind === 'null') refuse(`--dirty-bitmap: the destination must be an existing image, not ${dstKind === 'null' ? 'null:' : 'stdout'}`);
    if (o.blockHash !== undefined || o.verify) {
      refuse('--dirty-bitmap cannot be combined with --blkhash or --verify (only the dirty ranges are read)');
    }
  }
}

/** The name a side goes by in a checkpoint: file paths made absolute, so cwd does not matter. */
function identityName(side: SideDescription, opened: Endpoint | undefined): string {
  if (isSpec(side)) return side.kind === 'file' ? path.resolve(side.path) : describeSpec(side);
  return opened?.name ?? side.name;
}

/** Set up after the source is open, before the destination is: may refuse the copy. */
export class IntegrityPlan {
  readonly observers: CopyObserver[] = [];
  ranges: RangeSource | undefined;
  private hash: BlockHashObserver | undefined;
  private checkpoint: CheckpointObserver | undefined;
  private identity: CopyIdentity | undefined;
  private resumedFrom: DoneRanges | undefined;

  private constructor(private readonly o: IntegrityOptions, private readonly log?: (line: string) => void) {}

  /** Meta contexts the source must be opened with. */
  static sourceContexts(o: IntegrityOptions): string[] {
    return o.dirtyBitmap === undefined ? [] : [dirtyBitmapContext(o.dirtyBitmap)];
  }

  /**
   * Reads the checkpoint (if any) and checks it against this copy, so that a mismatch is
   * refused before the destination is opened (opening a new file truncates it).
   */
  static async prepare(
    o: IntegrityOptions, source: Endpoint, sourceSide: SideDescription, destinationSide: SideDescription,
    bytesOptions: Record<string, string | number | boolean | null>, log?: (line: string) => void,
  ): Promise<IntegrityPlan> {
    const plan = new IntegrityPlan(o, log);
    if (o.dirtyBitmap !== undefined) plan.ranges = new DirtyBitmapRanges(source, dirtyBitmapContext(o.dirtyBitmap));
    if (o.checkpoint !== undefined) {
      if (source.size === undefined) throw new NbdError('EINVAL', '--checkpoint: a copy from a stream cannot be resumed');
      plan.identity = {
        source: { name: identityName(sourceSide, source), size: source.size },
        destination: { name: identityName(destinationSide, undefined), size: source.size },
        options: bytesOptions,
      };
      const found = await readCheckpoint(o.checkpoint);
      if (found !== undefined) {
        // The destination's size is checked once it is open.
        const wanted = { ...plan.identity, destination: { ...plan.identity.destination, size: found.identity.destination.size } };
        const why = identityMismatch(found.identity, wanted);
        if (why !== undefined) throw new NbdError('EINVAL', `--checkpoint: ${o.checkpoint} belongs to another copy: ${why}`);
        plan.resumedFrom = new DoneRanges(found.done);
        plan.identity.destination.size = found.identity.destination.size;
        log?.(`checkpoint: resuming, ${plan.resumedFrom.bytes} of ${source.size} bytes were done`);
      }
    }
    return plan;
  }

  /** How the destination must be opened. */
  destinationHints(): Pick<DestinationHints, 'keepContents' | 'readBack'> {
    return { keepContents: this.resumedFrom !== undefined || this.o.dirtyBitmap !== undefined, readBack: this.o.verify === true };
  }

  /** With both sides open: last checks, then the observers (in order) and the range source. */
  attach(source: Endpoint, destination: Endpoint, flush: boolean, queueBytes: number): void {
    const o = this.o;
    if (o.dirtyBitmap !== undefined && destination.size !== undefined && source.size !== undefined && destination.size < source.size) {
      throw new NbdError('EINVAL', `--dirty-bitmap: ${destination.name} (${destination.size} bytes) is smaller than the source (${source.size} bytes)`);
    }
    if ((o.verify || o.checkpoint !== undefined || o.dirtyBitmap !== undefined) && destination.sequential) {
      const option = o.verify ? '--verify' : o.checkpoint !== undefined ? '--checkpoint' : '--dirty-bitmap';
      throw new NbdError('EINVAL', `${option}: ${destination.name} is a pipe or stream`);
    }
    if (o.dirtyBitmap !== undefined && this.log !== undefined) this.observers.push(tallyObserver('dirty bitmap', this.log));
    if (o.blockHash !== undefined || o.verify) {
      let spec = o.blockHash ?? DEFAULT_BLOCK_HASH;
      if (o.blockHash === undefined && source.size !== undefined) {
        while (source.size / spec.blockSize > MAX_VERIFY_BLOCKS) spec = { ...spec, blockSize: spec.blockSize * 2 };
      }
      this.hash = new BlockHashObserver(spec, o.blockHash !== undefined);
      this.observers.push(this.hash);
      if (o.verify) this.observers.push(new VerifyObserver(this.hash, this.log));
    }
    if (o.checkpoint !== undefined && this.identity !== undefined) {
      const identity = this.identity;
      if (this.resumedFrom === undefined) identity.destination.size = destination.size ?? source.size!;
      else if (destination.size !== undefined && destination.size !== identity.destination.size) {
        throw new NbdError('EINVAL', `--checkpoint: ${o.checkpoint} belongs to another copy: `
          + `the destination size was ${identity.destination.size}, it is now ${destination.size}`);
      }
      this.checkpoint = new CheckpointObserver(o.checkpoint, identity, this.resumedFrom ?? new DoneRanges(),
        { saveEvery: Math.max(1 << 20, Math.min(64 << 20, queueBytes / 4)), flush, log: this.log });
      this.observers.push(this.checkpoint);
      if (this.resumedFrom !== undefined) this.ranges = this.checkpoint.remaining();
    }
  }

  /** The block hash (lowercase hex), once the copy has succeeded, when one was asked for. */
  get blockHash(): string | undefined {
    return this.o.blockHash !== undefined ? this.hash?.hash : undefined;
  }

  /** The copy failed: keep what is known to be done for the next run. */
  async failed(): Promise<void> {
    await this.checkpoint?.abandon();
  }
}
