// The client library: one connection (NbdClient), how to open it (connect), URIs, multi-conn.
export { NbdClient, type ClientOptions, type ClientState } from './nbd-client.js';
export { connect, openTransport, tlsFromUri, type ConnectOptions } from './connect.js';
export type { ConnectTarget, Transport } from './transport.js';
export { parseNbdUri, formatNbdUri, isNbdUri, connectionUri, type NbdUri, type NbdUriTransport } from './uri.js';
export { TOOL_URI_ALLOW_LIST, URI_TRANSPORTS, type UriAllowList } from './uri-allow.js';
export { OptionError } from './negotiate.js';
export { OptionCalls } from './option-calls.js';
export * from './types.js';
export { MultiConn, type MultiConnOptions } from './multi-conn.js';
export { ReconnectingClient, isConnectionLost, type RetryOptions, type RetryEvent } from './reconnect.js';
export { sumStats, type ConnectionStats } from './stats.js';
export { lookupService, resolvePort } from './service-port.js';
export type { StrictMode, HandshakeFlags } from './strict-mode.js';
export type { Logger } from './logger.js';
export type { CloseOptions } from './close-options.js';
export type { ChunkCallback, ReadChunk } from './read-chunks.js';
