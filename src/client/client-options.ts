// What a caller may tune on one NbdClient: the handshake it asks for and its request pipeline.
import type { ClientTlsOptions } from '../tls/types.js';

export interface ClientOptions {
  /** Export to open (default ''; a URI's path sets it too). */
  exportName?: string;
  tls?: ClientTlsOptions;
  /** Stop after the greeting (and TLS / structured replies) so the caller can send options. */
  optMode?: boolean;
  /** Ask for NBD_OPT_EXTENDED_HEADERS (default true; falls back when unsupported). */
  requestExtendedHeaders?: boolean;
  /** Ask for NBD_OPT_STRUCTURED_REPLY when extended headers are off (default true). */
  requestStructuredReplies?: boolean;
  /** Meta contexts for SET_META_CONTEXT (default ['base:allocation']; [] for none). */
  metaContexts?: string[];
  /** Ask for canonical name and description with NBD_OPT_GO (default true). */
  fullInfo?: boolean;
  /** Commands on the wire at once; more wait in a queue (default 64). */
  maxInFlight?: number;
  /**
   * Hold requests back until this many can leave in one socket write, as long as more than
   * REQUEST_LOW_WATER others are still being served (default 1: every request leaves at
   * once). Each write wakes the server, so deep copy queues send theirs in groups.
   */
  requestBatch?: number;
  /**
   * Give up when the server has not finished the handshake after this many ms (default
   * 30000; 0 = wait forever). A server that accepts but never speaks would otherwise hang us.
   */
  handshakeTimeoutMs?: number;
}
