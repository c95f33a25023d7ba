// The "uri:" line: how libnbd describes a connection as an NBD URI (nbd_get_uri), rebuilt
// from its parts so that each listed export gets its own path. Query values go out raw and
// only the parameters that matter for reconnecting are kept, as libnbd does.

export interface UriParts {
  transport: 'tcp' | 'unix' | 'vsock';
  /** TLS was required or negotiated: the scheme becomes nbds. */
  tls: boolean;
  /** TCP host as the user wrote it, or the vsock CID. */
  host?: string;
  /** TCP / vsock port as the user wrote it; libnbd always prints one (default 10809). */
  port?: string;
  socket?: string;
  user?: string;
  tlsCertificates?: string;
  tlsPskFile?: string;
}

/** Characters a URI path may carry unescaped (RFC 2396 unreserved plus path punctuation). */
const PATH_SAFE = /[A-Za-z0-9\-_.!~*'()/;@&=+$,]/;
/** Characters the user-info part may carry unescaped. */
const USER_SAFE = /[A-Za-z0-9\-_.!~*'();:&=+$,]/;

function escapeWith(s: string, safe: RegExp): string {
  let out = '';
  for (const ch of s) {
    if (safe.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export function formatExportUri(parts: UriParts, exportName: string): string {
  const s = parts.tls ? 's' : '';
  let scheme: string;
  let server: string;
  const query: string[] = [];
  if (parts.transport === 'unix') {
    scheme = `nbd${s}+unix`;
    server = '';
    query.push(`socket=${parts.socket ?? ''}`);
  } else if (parts.transport === 'vsock') {
    scheme = `nbd${s}+vsock`;
    server = `${parts.host ?? ''}:${parts.port ?? '10809'}`;
  } else {
    scheme = `nbd${s}`;
    const host = parts.host || 'localhost';
    server = `${host.includes(':') ? `[${host}]` : host}:${parts.port || '10809'}`;
  }
  if (parts.tlsCertificates !== undefined) query.push(`tls-certificates=${parts.tlsCertificates}`);
  if (parts.tlsPskFile !== undefined) query.push(`tls-psk-file=${parts.tlsPskFile}`);
  const user = parts.user !== undefined ? `${escapeWith(parts.user, USER_SAFE)}@` : '';
  const path = '/' + escapeWith(exportName, PATH_SAFE);
  return `${scheme}://${user}${server}${path}${query.length ? '?' + query.join('&') : ''}`;
}
