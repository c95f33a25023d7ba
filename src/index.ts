// Library entry point: the promise-based NBD client, URIs, errors, and the pure wire codecs
// (as the `protocol` namespace, for people writing their own server or tools).
export * from './client/index.js';
export { NbdError, codeFromWire, wireFromCode, type ErrnoCode } from './protocol/errors.js';
export * as protocol from './protocol/index.js';
export type { ClientTlsOptions, TlsMode } from './tls/types.js';
