// What a server is told (library options) and what each session works from (resolved config).
import type { ServerTlsOptions } from '../tls/types.js';
import type { Backend } from './backends/types.js';
import type { FaultOptions } from './faults.js';

/** One export: a backend and what to tell clients about it. */
export interface ExportSpec {
  backend: BackendInput;
  description?: string;
  readOnly?: boolean;
}

/** A backend object, or a backend by name with its arguments, e.g. ['memory', '1G']. */
export type BackendInput = Backend | readonly string[];

export interface ServerOptions {
  /** The single export (named by `exportName`, default ""). Either this or `exports`. */
  backend?: BackendInput;
  exportName?: string;
  description?: string;
  /** Several exports by name; the first is also the default export "" unless "" is listed. */
  exports?: Record<string, ExportSpec | BackendInput>;
  /** Listen on this Unix socket path. Default when neither port nor fd is given: a private one. */
  unixSocket?: string;
  /** Listen on TCP (0 = any free port). */
  port?: number;
  host?: string;
  /** Listen on AF_VSOCK at this port, for any CID (nbdserve --vsock). */
  vsockPort?: number;
  /** Serve connections on an already listening fd (socket activation: 3). */
  listenFd?: number;
  /** false: open no listener at all; connections come only through serve() (nbdserve -s). */
  listen?: boolean;
  readOnly?: boolean;
  /** Oldstyle handshake (no options, default export only, simple replies). */
  oldstyle?: boolean;
  /** Offer structured replies (default true). */
  structuredReplies?: boolean;
  /** Offer extended headers (default true; needs structured replies). */
  extendedHeaders?: boolean;
  faults?: FaultOptions;
  /**
   * Connections served at once (nbdserve --max-connections); one more is closed as soon as it
   * arrives, before the greeting. 0 = no limit. Default DEFAULT_MAX_CONNECTIONS.
   */
  maxConnections?: number;
  /**
   * Milliseconds a client has from connecting to entering transmission (greeting, options,
   * STARTTLS and the TLS handshake); then it is dropped. 0 = no limit. Default
   * DEFAULT_HANDSHAKE_TIMEOUT_MS.
   */
  handshakeTimeoutMs?: number;
  tls?: ServerTlsOptions;
  /** Debug log sink (the CLI's -v). */
  log?: (message: string) => void;
  /** Problems that do not stop the server, e.g. --tls=on without credentials (TLS turned off). */
  warn?: (message: string) => void;
}

/** An export as a session serves it: its backend opened, its options settled. */
export interface ResolvedExport {
  name: string;
  backend: Backend;
  description: string | undefined;
  readOnly: boolean;
}

/** Everything a session needs, shared by every connection of one server. */
export interface SessionConfig {
  exports: Map<string, ResolvedExport>;
  /** The export a client gets for the empty name. */
  defaultExport: ResolvedExport;
  oldstyle: boolean;
  structuredReplies: boolean;
  extendedHeaders: boolean;
  faults: FaultOptions | undefined;
  /** 0 = no limit. */
  handshakeTimeoutMs: number;
  tls: ServerTlsOptions | undefined;
  log: ((message: string) => void) | undefined;
}

/** Payload limit we advertise and enforce for READ and WRITE. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
/** A WRITE payload above this is treated as a broken or hostile client: disconnect. */
export const MAX_SKIPPABLE_PAYLOAD = 64 * 1024 * 1024;
/** Requests a connection may have in flight before we stop reading from it... */
export const MAX_IN_FLIGHT = 256;
/** ...and the bytes of payload they may hold (writes received, reads being built). */
export const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
export const PREFERRED_BLOCK = 4096;
/** Enough for any real deployment of one process; a bound on what a flood of sockets costs. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** As qemu-nbd's handshake limit: a real client negotiates in milliseconds, even over TLS. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
