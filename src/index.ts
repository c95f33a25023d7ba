// Library entry point: the promise-based NBD client, URIs, errors, the pure wire codecs (as
// the `protocol` namespace, for people writing their own server or tools), and copy().
/**
 * The NBD client library: {@link connect} opens one connection ({@link NbdClient}),
 * {@link MultiConn} several to one export; every failure is an {@link NbdError}. The wire
 * codecs are the {@link protocol} namespace. {@link copy} is nbdcopy as a call. The embedded
 * server is `nbd-toolkit/server`.
 *
 * @packageDocumentation
 */
export * from './client/index.js';
export { NbdError, codeFromWire, wireFromCode, type ErrnoCode } from './protocol/errors.js';
export * as protocol from './protocol/index.js';
export type { ClientTlsOptions, TlsMode } from './tls/types.js';
export {
  copy, copyMany, progressObserver,
  type CopyEndpoint, type CopyRequest, type CopyResult, type CopyObserver, type CopyStart, type CopyEnd,
  type CopyJob, type CopyManyOptions, type CopyOutcome, type EndpointSpec,
} from './copy/index.js';
