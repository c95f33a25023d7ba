// NBD URIs (nbd, nbds, nbd+unix, nbds+unix, nbd+vsock, nbds+vsock): parse into a typed object
// and format back. Export names come from the path, percent-decoded; TLS settings from the query.
import { DEFAULT_PORT } from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import type { ClientTlsOptions } from '../tls/types.js';
import { checkUriAllowed, type NbdUriTransport, type UriAllowList } from './uri-allow.js';

export type { NbdUriTransport } from './uri-allow.js';

/** An NBD URI taken apart (see the NBD URI specification). */
export interface NbdUri {
  /** True for nbds / nbds+unix / nbds+vsock: TLS is required. */
  tls: boolean;
  /** From the scheme: nbd / nbds are TCP, +unix and +vsock the others. */
  transport: NbdUriTransport;
  /** tcp: host name or address (IPv6 without brackets); vsock: the CID as text. */
  host?: string;
  /** tcp / vsock port; tcp defaults to 10809. */
  port?: number;
  /** unix: the socket path (from `socket=`). */
  socket?: string;
  /** The path after the leading '/', percent-decoded ('' = the server's default export). */
  exportName: string;
  /** user@ in the authority, or tls-username=. */
  username?: string;
  /** `tls-certificates=`: directory of X.509 files. */
  tlsCertificates?: string;
  /** `tls-verify-peer=`: verify the server's certificate (default true). */
  tlsVerifyPeer?: boolean;
  /** `tls-psk-file=`: psktool key file, selecting PSK. */
  tlsPskFile?: string;
  /** `tls-type=`, kept as written. */
  tlsType?: string;
  /** Query keys this parser does not interpret, kept for formatting. */
  extra: Array<[string, string]>;
}

const SCHEMES: Record<string, { tls: boolean; transport: NbdUriTransport }> = {
  nbd: { tls: false, transport: 'tcp' },
  nbds: { tls: true, transport: 'tcp' },
  'nbd+tcp': { tls: false, transport: 'tcp' },
  'nbds+tcp': { tls: true, transport: 'tcp' },
  'nbd+unix': { tls: false, transport: 'unix' },
  'nbds+unix': { tls: true, transport: 'unix' },
  'nbd+vsock': { tls: false, transport: 'vsock' },
  'nbds+vsock': { tls: true, transport: 'vsock' },
};

function bad(uri: string, why: string): NbdError {
  return new NbdError('EINVAL', `invalid NBD URI '${uri}': ${why}`);
}

function decode(uri: string, s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad(uri, `bad percent-encoding in the ${what}`);
  }
}

function parseBool(uri: string, key: string, v: string): boolean {
  if (/^(1|true|on|yes)$/i.test(v)) return true;
  if (/^(0|false|off|no)$/i.test(v)) return false;
  throw bad(uri, `${key} must be a boolean, got '${v}'`);
}

/** True when the string looks like an NBD URI (so CLIs can tell URIs from file names). */
export function isNbdUri(s: string): boolean {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(s);
  return m !== null && m[1]!.toLowerCase() in SCHEMES;
}

/**
 * Takes an NBD URI apart; a malformed one throws an NbdError (EINVAL) naming the URI, one
 * that asks for what `allow` does not allow an NbdError EPERM. The defaults of `allow` are
 * libnbd's: any transport, TLS or not, but no local files (`tls-psk-file=`,
 * `tls-certificates=`); see UriAllowList.
 *
 * @example
 * ```ts
 * parseNbdUri('nbds+unix:///disk?socket=/run/nbd.sock').exportName;         // 'disk'
 * parseNbdUri('nbds://h/?tls-psk-file=/etc/keys.psk');                      // throws EPERM
 * parseNbdUri('nbds://h/?tls-psk-file=/etc/keys.psk', { uriAllowLocalFile: true }).tlsPskFile;
 * parseNbdUri('nbd+unix:///?socket=/s', { uriAllowTransports: ['tcp'] });   // throws EPERM
 * ```
 */
export function parseNbdUri(uri: string, allow: UriAllowList = {}): NbdUri {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(uri);
  if (!m) throw bad(uri, 'no scheme');
  const scheme = m[1]!.toLowerCase();
  const kind = SCHEMES[scheme];
  if (!kind) throw bad(uri, `unknown scheme '${scheme}' (expected nbd, nbds, nbd+unix, nbds+unix, nbd+vsock)`);
  let rest = m[2]!;
  const hashAt = rest.indexOf('#');
  if (hashAt >= 0) rest = rest.slice(0, hashAt);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let authority = '';
  let path = rest;
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
    path = slash < 0 ? '' : rest.slice(slash);
  } else if (rest !== '' ) {
    throw bad(uri, "expected '//' after the scheme");
  }
  const out: NbdUri = { tls: kind.tls, transport: kind.transport, exportName: '', extra: [] };

  // authority: [userinfo@]host[:port]
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    out.username = decode(uri, authority.slice(0, at), 'user name');
    authority = authority.slice(at + 1);
  }
  let host = authority;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close < 0) throw bad(uri, "unterminated '[' in the host");
    host = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw bad(uri, `unexpected '${after}' after the IPv6 address`);
      portText = after.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
    }
    // ':', '[' and ']' only appear in a host as a bracketed IPv6 address (RFC 3986).
    if (/[[\]:]/.test(host)) throw bad(uri, `bad host '${host}' (an IPv6 address goes in brackets)`);
  }
  host = decode(uri, host, 'host');
  if (portText !== undefined && portText !== '') {
    if (!/^\d+$/.test(portText)) throw bad(uri, `port '${portText}' is not a number`);
    const port = Number(portText);
    // vsock ports are 32 bits; TCP ports 16.
    const max = kind.transport === 'vsock' ? 0xffff_ffff : 65535;
    if (port > max || (port === 0 && kind.transport === 'tcp')) throw bad(uri, `port ${port} is out of range`);
    out.port = port;
  }

  if (path.startsWith('/')) path = path.slice(1);
  out.exportName = decode(uri, path, 'export name');
  if (out.exportName.includes('\0')) throw bad(uri, 'export name contains NUL');

  for (const part of query.split(/[&;]/)) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decode(uri, eq < 0 ? part : part.slice(0, eq), 'query');
    const value = decode(uri, eq < 0 ? '' : part.slice(eq + 1).replace(/\+/g, ' '), 'query');
    switch (key) {
      case 'socket': out.socket = value; break;
      case 'tls-certificates': out.tlsCertificates = value; break;
      case 'tls-verify-peer': out.tlsVerifyPeer = parseBool(uri, key, value); break;
      case 'tls-psk-file': out.tlsPskFile = value; break;
      case 'tls-username': out.username = value; break;
      case 'tls-type': out.tlsType = value; break;
      default: out.extra.push([key, value]);
    }
  }

  if (kind.transport !== 'unix' && out.socket !== undefined) {
    throw bad(uri, "'socket=' is only valid with nbd+unix or nbds+unix");
  }
  if (kind.transport === 'tcp') {
    if (host === '') host = 'localhost';
    out.host = host;
    out.port ??= DEFAULT_PORT;
  } else if (kind.transport === 'unix') {
    if (out.socket === undefined || out.socket === '') throw bad(uri, `${scheme} needs a 'socket=' query parameter`);
    if (host !== '') throw bad(uri, `${scheme} takes no host ('${host}')`);
  } else {
    if (!/^\d+$/.test(host)) throw bad(uri, `${scheme} needs a numeric CID as host, got '${host}'`);
    out.host = host;
    out.port ??= DEFAULT_PORT;
  }
  checkUriAllowed(uri, out, allow);
  return out;
}

// RFC 3986 unreserved characters plus the sub-delimiters and ':' '@' allowed in a path.
function encodePathPart(s: string): string {
  return encodeURIComponent(s).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%40/g, '@');
}

function encodeQueryValue(s: string): string {
  return encodeURIComponent(s).replace(/%2F/gi, '/').replace(/%3A/gi, ':');
}

/** The URI of `u`, escaped so that parseNbdUri gives `u` back. */
export function formatNbdUri(u: Omit<NbdUri, 'extra'> & { extra?: Array<[string, string]> }): string {
  const scheme = (u.tls ? 'nbds' : 'nbd') + (u.transport === 'tcp' ? '' : '+' + u.transport);
  let authority = '';
  if (u.transport !== 'unix') {
    const host = u.host ?? 'localhost';
    // In brackets too every byte but ':' is escaped: a zone id's '%' (RFC 6874 writes it %25),
    // or an '@' or ']' that would end the host early, must come back as it was.
    authority = host.includes(':') ? `[${encodeURIComponent(host).replaceAll('%3A', ':')}]` : encodeURIComponent(host);
    authority += `:${u.port ?? DEFAULT_PORT}`;
  }
  if (u.username !== undefined && u.transport !== 'unix') authority = `${encodeURIComponent(u.username)}@${authority}`;
  const params: string[] = [];
  if (u.transport === 'unix') params.push(`socket=${encodeQueryValue(u.socket ?? '')}`);
  if (u.username !== undefined && u.transport === 'unix') params.push(`tls-username=${encodeQueryValue(u.username)}`);
  if (u.tlsCertificates !== undefined) params.push(`tls-certificates=${encodeQueryValue(u.tlsCertificates)}`);
  if (u.tlsVerifyPeer !== undefined) params.push(`tls-verify-peer=${u.tlsVerifyPeer ? 'true' : 'false'}`);
  if (u.tlsPskFile !== undefined) params.push(`tls-psk-file=${encodeQueryValue(u.tlsPskFile)}`);
  if (u.tlsType !== undefined) params.push(`tls-type=${encodeQueryValue(u.tlsType)}`);
  for (const [k, v] of u.extra ?? []) params.push(`${encodeQueryValue(k)}=${encodeQueryValue(v)}`);
  return `${scheme}://${authority}/${encodePathPart(u.exportName)}${params.length ? '?' + params.join('&') : ''}`;
}

/**
 * The URI a connection describes itself with, in the shape libnbd's nbd_get_uri prints:
 * with TLS, the settings it was opened with (certificates, PSK file, user name, peer
 * verification) are in the query, so connect(uri) opens the same kind of connection.
 */
export function connectionUri(
  target: { unixSocket?: string; host?: string; port?: number }, exportName: string, tls: boolean,
  tlsOptions?: ClientTlsOptions,
): string | undefined {
  const t = tls && tlsOptions ? tlsOptions : undefined;
  const settings = {
    tls, exportName, username: t?.username, tlsCertificates: t?.certificates, tlsPskFile: t?.pskFile,
    tlsVerifyPeer: t?.verifyPeer === false ? false : undefined,
  };
  if (target.unixSocket !== undefined) {
    return formatNbdUri({ ...settings, transport: 'unix', socket: target.unixSocket });
  }
  if (target.host !== undefined) {
    return formatNbdUri({ ...settings, transport: 'tcp', host: target.host, port: target.port ?? DEFAULT_PORT });
  }
  return undefined;
}
