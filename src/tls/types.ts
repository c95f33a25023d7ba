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
  /** Verify the server certificate and host name (default true). */
  verifyPeer?: boolean;
  /** psktool key file; selects PSK instead of X.509. */
  pskFile?: string;
  /** PSK identity / X.509 user name; default the login name. */
  username?: string;
  /** Host name to verify against (from the URI). */
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
