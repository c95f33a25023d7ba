// Which NBD URIs a program accepts (libnbd's nbd_set_uri_allow_transports, _tls and
// _local_file), for programs that take URIs from people who should not reach everything the
// program can: checked when the URI is parsed, before any socket is opened or file read.
import { NbdError } from '../protocol/errors.js';
import type { TlsMode } from '../tls/types.js';

/** How an NBD URI reaches its server. */
export type NbdUriTransport = 'tcp' | 'unix' | 'vsock';

/** Every transport a URI can name. */
export const URI_TRANSPORTS: readonly NbdUriTransport[] = ['tcp', 'unix', 'vsock'];

/**
 * What an NBD URI may ask for, as libnbd's `nbd_set_uri_allow_*` calls. A URI that asks for
 * more is refused with one `NbdError` EPERM before anything is opened. The defaults are
 * libnbd's: any transport, TLS or not, and no local files. Options of {@link parseNbdUri}, of
 * `connect()` and `MultiConn.open()` (which apply them to a URI target only: the other targets
 * are the program's own choice) and of `copy()` (to its URI sides, both checked before either
 * is opened).
 *
 * libnbd's nbdcopy and nbdinfo allow local files, and so do ours (see
 * {@link TOOL_URI_ALLOW_LIST}); the library's `copy()` keeps the defaults unless told.
 *
 * @example
 * ```ts
 * // A service that opens URIs its users send: TCP only, TLS always, no files of ours.
 * const client = await connect(userUri, {
 *   uriAllowTransports: ['tcp'], uriAllowTls: 'require', uriAllowLocalFile: false,
 * });
 * ```
 */
export interface UriAllowList {
  /**
   * Transports a URI may use (libnbd's nbd_set_uri_allow_transports). Default: all of
   * `['tcp', 'unix', 'vsock']`. A Unix socket path (`socket=`) is a file of this machine:
   * leave out 'unix' to keep URIs from connecting to local sockets.
   */
  uriAllowTransports?: readonly NbdUriTransport[];
  /**
   * TLS in URIs (libnbd's nbd_set_uri_allow_tls): 'allow' (default) takes `nbd` and `nbds`
   * URIs, 'require' only `nbds` ones, 'off' only `nbd` ones.
   */
  uriAllowTls?: TlsMode;
  /**
   * May a URI name files for the client to read: `tls-psk-file=` and `tls-certificates=`
   * (libnbd's nbd_set_uri_allow_local_file)? Default false: a URI from a user could
   * otherwise make the program read its own key files and offer them to a server.
   */
  uriAllowLocalFile?: boolean;
}

/** What libnbd's nbdcopy and nbdinfo, and ours, allow: everything, local files included. */
export const TOOL_URI_ALLOW_LIST: Readonly<UriAllowList> = Object.freeze({ uriAllowLocalFile: true });

/** The parts of a parsed URI the allow-lists look at. */
interface UriAsks {
  tls: boolean;
  transport: NbdUriTransport;
  tlsPskFile?: string;
  tlsCertificates?: string;
}

function checkAllowList(allow: UriAllowList): void {
  const transports = allow.uriAllowTransports;
  if (transports !== undefined) {
    const unknown = Array.isArray(transports) ? transports.find((t) => !URI_TRANSPORTS.includes(t)) : transports;
    if (unknown !== undefined) {
      throw new NbdError('EINVAL', `uriAllowTransports: expected a list of ${URI_TRANSPORTS.join(', ')}, got '${String(unknown)}'`);
    }
  }
  const tls = allow.uriAllowTls;
  if (tls !== undefined && tls !== 'off' && tls !== 'allow' && tls !== 'require') {
    throw new NbdError('EINVAL', `uriAllowTls: expected off, allow or require, got '${String(tls)}'`);
  }
}

/** Throws EPERM when `u` (parsed from `uri`) asks for something `allow` does not allow. */
export function checkUriAllowed(uri: string, u: UriAsks, allow: UriAllowList = {}): void {
  checkAllowList(allow);
  const refuse = (why: string): NbdError => new NbdError('EPERM', `NBD URI '${uri}': ${why}`);
  if (!(allow.uriAllowTransports ?? URI_TRANSPORTS).includes(u.transport)) {
    throw refuse(`the ${u.transport} transport is not allowed (uriAllowTransports)`);
  }
  const tls = allow.uriAllowTls ?? 'allow';
  if (tls === 'off' && u.tls) throw refuse("TLS URIs are not allowed (uriAllowTls is 'off')");
  if (tls === 'require' && !u.tls) throw refuse("only TLS URIs (nbds) are allowed (uriAllowTls is 'require')");
  if (allow.uriAllowLocalFile !== true) {
    const key = u.tlsPskFile !== undefined ? 'tls-psk-file' : u.tlsCertificates !== undefined ? 'tls-certificates' : undefined;
    if (key !== undefined) throw refuse(`local file access (${key}=) is not allowed (uriAllowLocalFile)`);
  }
}
