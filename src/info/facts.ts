// Typed facts that nbdinfo prints. `probe` fills them from a connection; the renderers turn
// them into libnbd-compatible text or JSON. Nothing in here knows about sockets or output.
import type { Extent, Protocol } from '../client/types.js';

export interface ConnectionFacts {
  protocol: Protocol;
  tls: boolean;
  /** Structured replies negotiated (libnbd 1.14 prints "using structured packets"). */
  structured: boolean;
}

/** Block size constraints, present only when the server itself stated them. */
export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface ExportFacts {
  /** The server's canonical name when it sent one, else the name we asked for. */
  name: string;
  /** Omitted from output when absent or empty, like libnbd. */
  description?: string;
  size: number;
  /** The size exactly (printed; `size` rounds past 2^53). */
  exactSize: bigint;
  /** One line from file(1) about the first sectors; absent with --no-content. */
  content?: string;
  /** Absent for a [ CMD ARGS ] subprocess: that URI would not reach anything later. */
  uri?: string;
  /** Meta contexts the server offers; absent when it could not list them (no structured replies). */
  contexts?: string[];
  isRotational: boolean;
  isReadOnly: boolean;
  canCache: boolean;
  canDf: boolean;
  canFastZero: boolean;
  canFlush: boolean;
  canFua: boolean;
  canMultiConn: boolean;
  canTrim: boolean;
  canZero: boolean;
  blockSizes?: BlockSizes;
}

/** Everything the default and --list modes print. */
export interface ShowFacts {
  connection: ConnectionFacts;
  /** One export normally; every listed export that could be probed with --list. */
  exports: ExportFacts[];
}

/** One map of one export: extents in order from offset 0, as the server sent them. */
export interface MapFacts {
  context: string;
  size: number;
  extents: Extent[];
}
