// What a copy may ask for beyond copying: its own file, so that CopyOptions can include it
// without importing the integrity machinery (which imports the observers, which import the plan).
import type { BlockHashSpec } from './block-digests.js';

/** What a copy may ask for beyond copying (each one optional). */
export interface IntegrityOptions {
  /** Compute the block hash of the source (libnbd's --blkhash); the result carries it. */
  blockHash?: BlockHashSpec;
  /** After the copy (and flush), read the destination back and compare block by block. */
  verify?: boolean;
  /** Resumable copy: record the ranges done in this file; a later run copies only the rest. */
  checkpoint?: string;
  /** Incremental copy: only the ranges the source's qemu dirty bitmap of this name marks. */
  dirtyBitmap?: string;
}
