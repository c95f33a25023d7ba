// What probing needs from a connection. The real NbdClient is adapted to this in connect.ts;
// keeping the surface this small lets probe be tested and read without the whole client.
import type { BlockStatusResult, ConnectionInfo, ExportInfo, ExportListing } from '../client/types.js';

export interface InfoClient {
  readonly connection: ConnectionInfo;
  /** The export the last optInfo/optGo (or the handshake itself, outside option mode) described. */
  readonly export: ExportInfo | undefined;
  /** Still in option negotiation (false once ready, and always false for oldstyle servers). */
  readonly negotiating: boolean;
  optList(): Promise<ExportListing[]>;
  optInfo(exportName: string): Promise<ExportInfo>;
  optGo(exportName: string): Promise<ExportInfo>;
  /** Every meta context the server offers for that export (an empty query). */
  optListMetaContext(exportName: string): Promise<string[]>;
  pread(buffer: Uint8Array, offset: number): Promise<void>;
  blockStatus(length: number, offset: number): Promise<BlockStatusResult>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Stop after the greeting so that options can be sent one by one (nbd_set_opt_mode). */
  optMode: boolean;
  /** Meta contexts to negotiate before going into transmission (for --map). */
  metaContexts?: string[];
}

/** Opens a fresh connection to the one server nbdinfo was pointed at. */
export type Opener = (options: OpenOptions) => Promise<InfoClient>;
