// Client side of NBD_OPT_STARTTLS: after the server's ACK, wrap the plain socket in TLS with
// either a pre-shared key (psktool file + user name) or X.509 (libnbd certificate directory).
import { isIP } from 'node:net';
import { userInfo } from 'node:os';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { awaitSecure, DEFAULT_HANDSHAKE_TIMEOUT_MS } from './await-secure.js';
import { loadClientCertificates } from './cert-dir.js';
import { lookupPskKey } from './psk-file.js';
import type { ClientTlsOptions, ClientTlsUpgrade } from './types.js';

/** The login name, which libnbd also uses when no TLS user name is given. */
export function defaultTlsUsername(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.LOGNAME ?? process.env.USER ?? 'nobody';
  }
}

/**
 * Builds the tls.connect() options for `options` (reading key and certificate files now, so a
 * missing file is reported before any bytes move). Exported so callers can fail early.
 */
export function clientTlsConnectOptions(socket: Duplex, options: ClientTlsOptions): tls.ConnectionOptions {
  if (options.pskFile !== undefined) {
    const identity = options.username ?? defaultTlsUsername();
    const psk = lookupPskKey(options.pskFile, identity);
    return {
      socket,
      // TLS 1.2 PSK suites are what was verified against nbdkit (GnuTLS) here; OpenSSL's TLS 1.3
      // external-PSK path was not, so it stays off. ECDHE first for forward secrecy.
      ciphers: 'ECDHE-PSK:DHE-PSK:PSK',
      maxVersion: 'TLSv1.2',
      pskCallback: () => ({ psk, identity }),
      checkServerIdentity: () => undefined,
    };
  }

  const files = loadClientCertificates(options.certificates);
  const verifyPeer = options.verifyPeer ?? true;
  const hostname = options.hostname !== undefined && options.hostname !== '' ? options.hostname : undefined;
  const connect: tls.ConnectionOptions = {
    socket,
    rejectUnauthorized: verifyPeer,
    // The chain is always checked (when verifying); the name only when there is one to check:
    // a Unix socket has no host name.
    checkServerIdentity: (_name, cert) =>
      verifyPeer && hostname !== undefined ? tls.checkServerIdentity(hostname, cert) : undefined,
  };
  // SNI takes DNS names only.
  if (hostname !== undefined && isIP(hostname) === 0) connect.servername = hostname;
  if (files.ca !== undefined) connect.ca = files.ca;
  if (files.cert !== undefined && files.key !== undefined) {
    connect.cert = files.cert;
    connect.key = files.key;
  }
  if (files.crl !== undefined) connect.crl = files.crl;
  return connect;
}

/** Runs the client TLS handshake over `socket`; resolves with the encrypted stream. */
export const upgradeClientTls: ClientTlsUpgrade = async (socket, options) => {
  let connectOptions: tls.ConnectionOptions;
  try {
    connectOptions = clientTlsConnectOptions(socket, options);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const tlsSocket = tls.connect(connectOptions);
  return awaitSecure(tlsSocket, 'secureConnect', {
    side: 'client',
    usingPsk: options.pskFile !== undefined,
    timeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    raw: socket,
  });
};
