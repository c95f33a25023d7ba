// TLS settings shared by the client (nbds:// URIs, nbdcopy, nbdinfo) and the embedded server.
import type { Duplex } from 'node:stream';

/** Client TLS policy: never, when the server offers it, or fail unless the connection is encrypted. */
export type TlsMode = 'off' | 'allow' | 'require';

/** How the client does TLS (the `tls` option of connect(); nbds URIs set it from their query). */
export interface ClientTlsOptions {
  /** Whether to use TLS at all. */
  mode: TlsMode;
  /** Directory with ca-cert.pem, client-cert.pem, client-key.pem (libnbd layout). */
  certificates?: string;
  /**
   * Verify the server's certificate: its chain up to a trusted CA and, on TCP, its name
   * (default true; false checks neither, as libnbd's tls-verify-peer=false).
   */
  verifyPeer?: boolean;
  /** psktool key file; selects PSK instead of X.509. */
  pskFile?: string;
  /** PSK identity / X.509 user name; default the login name. */
  username?: string;
  /**
   * The name the server's X.509 certificate must carry (a DNS name or an IP address in its
   * subject alternative names). Default: the host connected to, for every TCP target (an
   * `nbd`/`nbds` URI or `{ host }`); a certificate for another name then fails with an
   * `NbdError` EACCES. Unix sockets, vsock, commands, fds and streams have no host: only the
   * chain is checked there unless this is set. Not used with PSK.
   *
   * @example
   * ```ts
   * // Reach the server by address, check the name its certificate was issued for.
   * await connect({ host: '192.0.2.7' }, { tls: { mode: 'require', hostname: 'nbd.example.com' } });
   * ```
   */
  hostname?: string;
  /** Give up on a handshake that does not finish in this time (default 30 s). */
  handshakeTimeoutMs?: number;
}

/** How the embedded server does TLS (nbdkit's --tls, --tls-certificates, --tls-psk, --tls-verify-peer). */
export interface ServerTlsOptions {
  /** Never, offer it, or refuse clients that do not upgrade. */
  mode: 'off' | 'on' | 'require';
  /** Directory with server-cert.pem, server-key.pem, ca-cert.pem (nbdkit layout). */
  certificates?: string;
  /** psktool key file: PSK instead of X.509. */
  pskFile?: string;
  /** Ask for and verify a client certificate. */
  verifyPeer?: boolean;
  /** Give up on a handshake that does not finish in this time (default 30 s). */
  handshakeTimeoutMs?: number;
}

/** Upgrades a plain socket after NBD_OPT_STARTTLS was acknowledged. Resolves once the handshake is done. */
export type ClientTlsUpgrade = (socket: Duplex, options: ClientTlsOptions) => Promise<Duplex>;
export type ServerTlsUpgrade = (socket: Duplex, options: ServerTlsOptions) => Promise<Duplex>;

/** What a finished handshake negotiated; nbdinfo and logs show it. */
export interface TlsSessionInfo {
  /** 'TLSv1.2', 'TLSv1.3', ... */
  protocol: string;
  /** OpenSSL cipher name, e.g. 'ECDHE-PSK-CHACHA20-POLY1305'. */
  cipher: string;
  /** 'psk' or 'x509'. */
  auth: 'psk' | 'x509';
}
