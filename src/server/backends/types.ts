// What a backend offers the server. One backend instance serves every connection to its
// export, so "shared and consistent" backends can advertise multi-conn.
import type { Extent } from '../../protocol/chunks.js';

export type { Extent };

/** One export as NBD_OPT_LIST names it. */
export interface ExportListing {
  name: string;
  description: string;
}

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
  /** Limits to announce; undefined: the server's defaults; null: none at all (an upstream that stated none). */
  readonly blockSize?: BlockSizeLimits | null;

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

  // ---- optional: backends that stand for another server (the nbd backend) ----

  /**
   * Transmission flags to show as they are, instead of flags derived from the can* fields
   * (a forwarding backend passes its upstream's on). The server still marks a read-only
   * export read-only and drops what the client's reply style cannot use.
   */
  readonly transmissionFlags?: number;
  /** Shown for NBD_INFO_DESCRIPTION when the export was given no description of its own. */
  readonly description?: string;
  /** Any export name the client asks for is this backend's (passed on to open). */
  readonly dynamicExports?: boolean;
  /**
   * The backend of one client connection, for the export it asked for and the meta contexts it
   * selected; the session uses it instead of this one and closes it when the client leaves.
   */
  open?(exportName: string, metaContexts: readonly string[]): Promise<Backend>;
  /** Exports for NBD_OPT_LIST in place of the server's own list (dynamic exports). */
  listExports?(): Promise<ExportListing[]>;
  /**
   * The meta contexts this backend serves for `exportName` that match `queries` ([] = all),
   * in the backend's order. When present it replaces the server's own base:allocation, and
   * blockStatus answers for whichever of them the client selected.
   */
  metaContexts?(exportName: string, queries: readonly string[]): Promise<string[]>;
  /** Extents of each selected context from `offset`, as one NBD_CMD_BLOCK_STATUS reply has them. */
  blockStatus?(offset: number, length: number, contexts: readonly string[], reqOne: boolean): Promise<Map<string, Extent[]>>;
}
