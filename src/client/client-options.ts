// What a caller may tune on one NbdClient: the handshake it asks for and its request pipeline.
import type { ClientTlsOptions } from '../tls/types.js';
import type { HandshakeFlags, StrictMode } from './strict-mode.js';
import type { Logger } from './logger.js';

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
  /**
   * Which checks a command passes before it is sent (libnbd's set_strict_mode); default: all.
   * `false` turns every one off, so a server test suite can send bad requests on purpose and
   * see the server's answer. See StrictMode.
   *
   * @example
   * ```ts
   * const c = await connect(uri, { strict: { bounds: false } });
   * await c.pread(new Uint8Array(512), c.export.size); // the server's error, not ours
   * ```
   */
  strict?: boolean | StrictMode;
  /**
   * The handshake flags the client may answer with (libnbd's set_handshake_flags); default
   * both. Without `fixedNewstyle` the client talks plain newstyle (no options but
   * EXPORT_NAME); without `noZeroes` the server sends the 124 zero bytes after EXPORT_NAME.
   *
   * @example
   * ```ts
   * const c = await connect(uri, { handshakeFlags: { fixedNewstyle: false } });
   * c.connection.protocol; // 'newstyle'
   * ```
   */
  handshakeFlags?: HandshakeFlags;
  /**
   * Ask for NBD_INFO_BLOCK_SIZE with NBD_OPT_GO / INFO (libnbd's set_request_block_size;
   * default true). Off, the server's constraints are not asked for, and export facts show
   * the defaults.
   */
  requestBlockSize?: boolean;
  /**
   * Where this connection's debug messages go (default: stderr when NBD_DEBUG=1 or
   * LIBNBD_DEBUG=1, else nowhere). See Logger.
   */
  logger?: Logger;
  /** Name of this connection in its debug messages (libnbd's set_handle_name; default nbdN). */
  name?: string;
}
