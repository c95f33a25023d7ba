// Server side of NBD_OPT_STARTTLS: credentials are loaded once at start-up
// (loadServerTlsContext, so missing files stop the server immediately), then each STARTTLS
// wraps that connection's socket with upgradeServerTls after the ACK has been written.
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { NbdError } from '../protocol/errors.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from './await-secure.js';
import { loadServerCertificates } from './cert-dir.js';
import { handshakeError } from './handshake-errors.js';
import { loadPskFile } from './psk-file.js';
import type { ServerTlsOptions, ServerTlsUpgrade } from './types.js';

/** Credentials ready for handshakes; opaque to the server code apart from `auth`. */
export interface ServerTlsContext {
  readonly auth: 'psk' | 'x509';
  readonly verifyPeer: boolean;
  readonly handshakeTimeoutMs: number;
  /** Options for the per-connection tls.Server that runs one handshake. */
  readonly serverOptions: tls.TlsOptions;
}

const loaded = new WeakMap<ServerTlsOptions, ServerTlsContext>();

/**
 * Loads (and checks) the server's TLS credentials. Returns undefined for mode 'off'. As in
 * nbdkit, a PSK file takes precedence over certificates. Throws NbdError naming the missing file.
 */
export function loadServerTlsContext(options: ServerTlsOptions): ServerTlsContext | undefined {
  if (options.mode === 'off') return undefined;
  const cached = loaded.get(options);
  if (cached !== undefined) return cached;

  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  let context: ServerTlsContext;
  if (options.pskFile !== undefined) {
    const table = loadPskFile(options.pskFile);
    context = {
      auth: 'psk',
      verifyPeer: false,
      handshakeTimeoutMs,
      serverOptions: {
        // Same suites as the client side (see client.ts); libnbd's GnuTLS agrees on them.
        ciphers: 'ECDHE-PSK:DHE-PSK:PSK',
        maxVersion: 'TLSv1.2',
        // An unknown identity gets no key, which OpenSSL turns into a handshake failure.
        pskCallback: (_socket, identity) => table.get(identity) ?? null,
        handshakeTimeout: handshakeTimeoutMs,
      },
    };
  } else {
    const verifyPeer = options.verifyPeer ?? false;
    const files = loadServerCertificates(options.certificates, verifyPeer);
    const serverOptions: tls.TlsOptions = {
      cert: files.cert,
      key: files.key,
      requestCert: verifyPeer,
      // Checked by us after the handshake, so the failure can be reported with its reason
      // instead of a silent close.
      rejectUnauthorized: false,
      handshakeTimeout: handshakeTimeoutMs,
    };
    if (files.ca !== undefined) serverOptions.ca = files.ca;
    if (files.crl !== undefined) serverOptions.crl = files.crl;
    context = { auth: 'x509', verifyPeer, handshakeTimeoutMs, serverOptions };
    // Parse once now: a key that does not match the certificate, or PEM garbage, must stop
    // the server at start-up rather than fail every client later.
    try {
      tls.createSecureContext(serverOptions);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new NbdError('EINVAL', `TLS certificates directory ${files.dir}: ${why}`, { cause: err });
    }
  }
  loaded.set(options, context);
  return context;
}

/** Runs the server TLS handshake on `socket` using a context from loadServerTlsContext. */
export function upgradeServerTlsWith(socket: Duplex, context: ServerTlsContext): Promise<tls.TLSSocket> {
  // A never-listening tls.Server per connection: it is Node's public way to get a server-side
  // handshake that also evaluates the client certificate (TLSSocket alone does not).
  const server = tls.createServer(context.serverOptions);
  const usingPsk = context.auth === 'psk';
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const onSecure = (tlsSocket: tls.TLSSocket): void => {
      cleanup();
      if (context.verifyPeer && !tlsSocket.authorized) {
        const presented = Object.keys(tlsSocket.getPeerCertificate()).length > 0;
        const why = presented
          ? String(tlsSocket.authorizationError ?? 'not verified').toLowerCase().replaceAll('_', ' ')
          : 'the client presented no certificate';
        tlsSocket.on('error', () => {});
        tlsSocket.destroy();
        socket.destroy();
        reject(new NbdError('EACCES', `TLS: client certificate rejected: ${why}`));
        return;
      }
      resolve(tlsSocket);
    };
    const onClientError = (err: Error, tlsSocket: tls.TLSSocket): void => {
      cleanup();
      tlsSocket.on('error', () => {});
      tlsSocket.destroy();
      socket.destroy();
      if ((err as { code?: string }).code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
        reject(new NbdError('ETIMEDOUT', `TLS: handshake did not finish within ${context.handshakeTimeoutMs} ms`, { cause: err }));
      } else {
        reject(handshakeError(err, 'server', usingPsk));
      }
    };
    const cleanup = (): void => {
      server.off('secureConnection', onSecure);
      server.off('tlsClientError', onClientError);
    };
    server.on('secureConnection', onSecure);
    server.on('tlsClientError', onClientError);
    server.emit('connection', socket);
  });
}

/** ServerTlsUpgrade for src/server: loads (once per options object) and runs the handshake. */
export const upgradeServerTls: ServerTlsUpgrade = async (socket, options) => {
  const context = loadServerTlsContext(options);
  if (context === undefined) {
    socket.destroy();
    throw new NbdError('EINVAL', 'TLS: upgrade requested but the server has TLS turned off');
  }
  return upgradeServerTlsWith(socket, context);
};
