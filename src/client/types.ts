// Public types of the client library. The implementation lives beside this file; the copy
// and info layers depend on these shapes only.
import type { Extent } from '../protocol/chunks.js';

// Extents are a wire shape shared with the server; the client's API names them too.
export type { Extent };

export type Protocol = 'oldstyle' | 'newstyle' | 'newstyle-fixed';

/** Everything a connection learnt about its export during the handshake. */
export interface ExportInfo {
  exportName: string;
  /** Canonical name the server reported with NBD_INFO_NAME, if any. */
  canonicalName?: string;
  description?: string;
  /** Export size in bytes. Past 2^53 (8 PiB) a number cannot hold every integer: see exactSize. */
  size: number;
  /** The export size exactly as the server sent it. */
  exactSize: bigint;
  /** Raw 16-bit transmission flags. */
  transmissionFlags: number;
  readOnly: boolean;
  canFlush: boolean;
  canFua: boolean;
  rotational: boolean;
  canTrim: boolean;
  canZero: boolean;
  canDf: boolean;
  canMultiConn: boolean;
  canResize: boolean;
  canCache: boolean;
  canFastZero: boolean;
  canBlockStatusPayload: boolean;
  /** Block size constraints; defaults (1, 4096, 32 MiB or size) when the server stated none. */
  blockSizeMinimum: number;
  blockSizePreferred: number;
  blockSizeMaximum: number;
  /** True when the server itself sent NBD_INFO_BLOCK_SIZE. */
  blockSizeFromServer: boolean;
}

/** What the connection negotiated, beside the export itself. */
export interface ConnectionInfo {
  protocol: Protocol;
  tls: boolean;
  structuredReplies: boolean;
  extendedHeaders: boolean;
  /** Meta contexts negotiated with SET_META_CONTEXT, by name. */
  metaContexts: string[];
  /** The URI that describes this connection (nbdinfo prints it). */
  uri?: string;
}

export interface ExportListing {
  name: string;
  description: string;
}

export interface CommandFlags {
  fua?: boolean;
}

export interface ZeroFlags extends CommandFlags {
  /** Ask the server not to punch a hole (NBD_CMD_FLAG_NO_HOLE). */
  noHole?: boolean;
  /** Fail fast with ENOTSUP unless zeroing is faster than writing (NBD_CMD_FLAG_FAST_ZERO). */
  fastZero?: boolean;
}

export interface ReadFlags {
  /** Do not fragment the structured reply (NBD_CMD_FLAG_DF). */
  df?: boolean;
}

export interface BlockStatusFlags {
  /** Ask for one extent only (NBD_CMD_FLAG_REQ_ONE). */
  reqOne?: boolean;
}

/** Block status reply: extents per negotiated context name, starting at the requested offset. */
export type BlockStatusResult = Map<string, Extent[]>;
