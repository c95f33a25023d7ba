// Tunables of one copy, with nbdcopy's defaults.
import type { RangeSource } from './range-source.js';
import type { IntegrityOptions } from './integrity-options.js';

export interface CopyOptions extends IntegrityOptions {
  /** Maximum NBD connections (multi-conn) per side. */
  connections: number;
  /** Maximum requests in flight per connection. */
  requests: number;
  /** Largest read/write request in bytes. */
  requestSize: number;
  /** Bytes in flight per connection (caps requests × requestSize), like nbdcopy's --queue-size. */
  queueSize: number;
  /** All-zero blocks of this size inside data become zero requests; 0 turns detection off. */
  sparseSize: number;
  /** The destination must end up fully allocated (no holes). */
  allocated: boolean;
  /** The user promises the destination already reads as zeroes. */
  destinationIsZero: boolean;
  /** Ignore the source's extents and read everything. */
  noExtents: boolean;
  /** Flush the destination at the end. */
  flush: boolean;
  /** One request at a time, in order. */
  synchronous: boolean;
  /** Only these ranges of the source are copied (set by --checkpoint and --dirty-bitmap). */
  ranges?: RangeSource;
  /** Debug lines (-v). */
  log?: (line: string) => void;
  /** Aborting stops new work, drains what is in flight, then the copy rejects. */
  signal?: AbortSignal;
}

export const DEFAULT_COPY_OPTIONS: CopyOptions = {
  connections: 4,
  requests: 64,
  requestSize: 256 * 1024,
  queueSize: 16 * 1024 * 1024,
  sparseSize: 4096,
  allocated: false,
  destinationIsZero: false,
  noExtents: false,
  flush: false,
  synchronous: false,
};

export const MAX_REQUEST_SIZE = 32 * 1024 * 1024;
export const MIN_REQUEST_SIZE = 512;
