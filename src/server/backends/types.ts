// What a backend offers the server. One backend instance serves every connection to its
// export, so "shared and consistent" backends can advertise multi-conn.
import type { Extent } from '../../protocol/chunks.js';

export type { Extent };

export interface BlockSizeLimits {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface ZeroOptions {
  /** The client asked that no hole be punched (NBD_CMD_FLAG_NO_HOLE). */
  noHole: boolean;
  fua: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than fall back to writing zeroes. */
  fast: boolean;
}

/**
 * Methods may return a value or a promise: the in-memory backends answer synchronously and
 * the session does not pay for a promise per request when they do.
 */
export interface Backend {
  /** Name shown in logs and descriptions ("memory", "file", ...). */
  readonly kind: string;
  readonly size: number;
  /** False for backends that cannot store data (pattern, sparse-random): exported read-only. */
  readonly writable: boolean;
  readonly canTrim: boolean;
  readonly canZero: boolean;
  /** Zeroing is cheaper than writing zeroes (no data touched); otherwise FAST_ZERO fails with ENOTSUP. */
  readonly canFastZero: boolean;
  readonly canFlush: boolean;
  readonly canCache: boolean;
  /** Every connection sees the same data at once (one shared store, no per-connection cache). */
  readonly multiConn: boolean;
  /** May report holes: structured reads then ask for extents to send holes as hole chunks. */
  readonly sparse: boolean;
  readonly blockSize?: BlockSizeLimits;

  /** Fills all of `into` with the bytes at `offset`. Bounds are checked by the caller. */
  read(into: Buffer, offset: number): void | Promise<void>;
  write(data: Buffer, offset: number, fua: boolean): void | Promise<void>;
  zero(offset: number, length: number, options: ZeroOptions): void | Promise<void>;
  trim(offset: number, length: number, fua: boolean): void | Promise<void>;
  flush(): void | Promise<void>;
  cache(offset: number, length: number): void | Promise<void>;
  /**
   * base:allocation extents from `offset`, contiguous, covering at least one byte and at most
   * `length` bytes (the caller asks again for the rest). Flags are STATE_HOLE / STATE_ZERO.
   */
  extents(offset: number, length: number): Extent[] | Promise<Extent[]>;
  close(): void | Promise<void>;
}
