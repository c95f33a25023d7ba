// Public types of the client library. The implementation lives beside this file; the copy
// and info layers depend on these shapes only.
import type { Extent } from '../protocol/chunks.js';

// Extents are a wire shape shared with the server; the client's API names them too.
export type { Extent };

/** The handshake style the server spoke: oldstyle, newstyle, or fixed newstyle (what servers speak today). */
export type Protocol = 'oldstyle' | 'newstyle' | 'newstyle-fixed';

/** Everything a connection learnt about its export during the handshake. */
export interface ExportInfo {
  /** The export name the client asked for ('' is the server's default export). */
  exportName: string;
  /** Canonical name the server reported with NBD_INFO_NAME, if any. */
  canonicalName?: string;
  /** Free-form description the server sent with NBD_INFO_DESCRIPTION, if any. */
  description?: string;
  /** Export size in bytes. Past 2^53 (8 PiB) a number cannot hold every integer: see exactSize. */
  size: number;
  /** The export size exactly as the server sent it. */
  exactSize: bigint;
  /** Raw 16-bit transmission flags. */
  transmissionFlags: number;
  /** Writes, zeroes and trims are refused (NBD_FLAG_READ_ONLY). */
  readOnly: boolean;
  /** flush() is supported (NBD_FLAG_SEND_FLUSH). */
  canFlush: boolean;
  /** The `fua` flag is honoured (NBD_FLAG_SEND_FUA). */
  canFua: boolean;
  /** The server says seeks are costly (NBD_FLAG_ROTATIONAL): read in order. */
  rotational: boolean;
  /** trim() is supported (NBD_FLAG_SEND_TRIM). */
  canTrim: boolean;
  /** zero() is supported (NBD_FLAG_SEND_WRITE_ZEROES). */
  canZero: boolean;
  /** The `df` read flag is honoured (NBD_FLAG_SEND_DF). */
  canDf: boolean;
  /** Several connections to this export see one consistent disk (NBD_FLAG_CAN_MULTI_CONN): MultiConn may be used. */
  canMultiConn: boolean;
  /** The export can be resized (NBD_FLAG_SEND_RESIZE). */
  canResize: boolean;
  /** cache() is supported (NBD_FLAG_SEND_CACHE). */
  canCache: boolean;
  /** The `fastZero` zero flag is supported (NBD_FLAG_SEND_FAST_ZERO). */
  canFastZero: boolean;
  /** Block status requests may name the contexts they want (NBD_FLAG_BLOCK_STAT_PAYLOAD). */
  canBlockStatusPayload: boolean;
  /** Block size constraints; defaults (1, 4096, 32 MiB or size) when the server stated none. */
  blockSizeMinimum: number;
  /** The request size the server works best with. */
  blockSizePreferred: number;
  /** The largest read or write payload the server accepts. */
  blockSizeMaximum: number;
  /** True when the server itself sent NBD_INFO_BLOCK_SIZE. */
  blockSizeFromServer: boolean;
}

/** What the connection negotiated, beside the export itself. */
export interface ConnectionInfo {
  /** The handshake style. */
  protocol: Protocol;
  /** The connection is encrypted (STARTTLS succeeded). */
  tls: boolean;
  /** Structured replies were negotiated (needed for block status). */
  structuredReplies: boolean;
  /** Extended headers were negotiated: 64-bit lengths in requests and replies. */
  extendedHeaders: boolean;
  /** Meta contexts negotiated with SET_META_CONTEXT, by name. */
  metaContexts: string[];
  /** The URI that describes this connection (nbdinfo prints it). */
  uri?: string;
}

/** One export of the server's list (optList()). */
export interface ExportListing {
  /** The name to connect to it with. */
  name: string;
  /** Its description ('' when the server gave none). */
  description: string;
}

/** Flags every writing command takes. */
export interface CommandFlags {
  /** Force unit access: the reply comes once the data is on stable storage (NBD_CMD_FLAG_FUA). */
  fua?: boolean;
}

/** Flags of zero(). */
export interface ZeroFlags extends CommandFlags {
  /** Ask the server not to punch a hole (NBD_CMD_FLAG_NO_HOLE). */
  noHole?: boolean;
  /** Fail fast with ENOTSUP unless zeroing is faster than writing (NBD_CMD_FLAG_FAST_ZERO). */
  fastZero?: boolean;
}

/** Flags of pread(). */
export interface ReadFlags {
  /** Do not fragment the structured reply (NBD_CMD_FLAG_DF). */
  df?: boolean;
}

/** Flags of blockStatus(). */
export interface BlockStatusFlags {
  /** Ask for one extent only (NBD_CMD_FLAG_REQ_ONE). */
  reqOne?: boolean;
}

/** Block status reply: extents per negotiated context name, starting at the requested offset. */
export type BlockStatusResult = Map<string, Extent[]>;
