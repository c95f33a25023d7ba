// Turns the many shapes of OpenSSL/Node handshake failures into one NbdError whose message
// says what most likely went wrong (untrusted certificate, wrong host, wrong key...).
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';

const UNTRUSTED_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'INVALID_CA',
  'INVALID_PURPOSE',
]);

// Alerts a peer sends when the PSK (or its identity) does not match: with PSK, a wrong key only
// shows up as a MAC or decrypt failure, never as a friendly "wrong password".
const PSK_MISMATCH_CODES = new Set([
  'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC',
  'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC',
  'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR',
  'ERR_SSL_DECRYPT_ERROR',
  'ERR_SSL_BAD_RECORD_MAC',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_PSK_IDENTITY',
  'ERR_SSL_PSK_IDENTITY_NOT_FOUND',
]);

const CLOSED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE']);

export type TlsSide = 'client' | 'server';

/** Describes a handshake failure; `usingPsk` decides how MAC/decrypt failures are worded. */
export function handshakeError(err: unknown, side: TlsSide, usingPsk: boolean): NbdError {
  if (err instanceof NbdError) return err;
  const e = err as (Error & { code?: string; reason?: string }) | undefined;
  const code = e?.code ?? '';
  const reason = (e?.reason ?? e?.message ?? String(err)).replace(/\s+/g, ' ').trim();
  const peer = side === 'client' ? 'server' : 'client';

  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new NbdError('EACCES', `TLS: ${peer} certificate does not match the host name: ${reason}`, { cause: err });
  }
  if (UNTRUSTED_CERT_CODES.has(code)) {
    return new NbdError('EACCES', `TLS: ${peer} certificate is not trusted (${code.toLowerCase().replaceAll('_', ' ')})`, { cause: err });
  }
  if (usingPsk && PSK_MISMATCH_CODES.has(code)) {
    return new NbdError('EACCES', `TLS: PSK authentication failed (wrong key or unknown user name): ${reason}`, { cause: err });
  }
  if (CLOSED_CODES.has(code) || /socket hang up|ECONNRESET|premature close/i.test(reason)) {
    return closedDuringHandshake(side, usingPsk, err);
  }
  if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM') {
    return new NbdError('EPROTO', `TLS: no common cipher with the ${peer} (is one side using PSK and the other X.509?): ${reason}`, { cause: err });
  }
  if (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE') {
    return new NbdError('EPROTO', `TLS: the ${peer} refused the handshake (no common cipher or credentials rejected; is one side using PSK and the other X.509?)`, { cause: err });
  }
  return new NbdError('EPROTO', `TLS handshake failed: ${reason}`, { cause: err });
}

/**
 * The peer hung up mid-handshake. nbdkit (GnuTLS) does that on a wrong PSK key or unknown user,
 * with no alert first, so nothing tells it from a server that went away then (retries go on);
 * OpenSSL servers, ours included, send an alert instead (PSK_MISMATCH_CODES).
 */
export function closedDuringHandshake(side: TlsSide, usingPsk: boolean, cause?: unknown): NbdError {
  const peer = side === 'client' ? 'server' : 'client';
  const hint = usingPsk
    ? 'wrong PSK key or unknown user name?'
    : side === 'client' ? 'it may require a client certificate or reject ours' : 'it may have rejected our certificate';
  return new NbdError('ECONNRESET', `TLS: ${peer} closed the connection during the handshake (${hint})`, cause !== undefined ? { cause } : undefined);
}

/**
 * Words the error for a server that hangs up on a connection whose handshake completed on our
 * side, before sending a byte. In TLS 1.3 the server checks the client certificate only after
 * our last handshake message, so this is how a missing or refused client certificate reaches a
 * client (GnuTLS sends no alert): the next read just fails. Call it right after the handshake:
 * a destroyed socket no longer tells whether we had a certificate to send.
 */
export function closedAfterHandshake(secure: Duplex, usingPsk: boolean): (cause?: unknown) => NbdError {
  const local = (secure as { getCertificate?: () => object | null }).getCertificate?.();
  const haveCertificate = local != null && Object.keys(local).length > 0;
  const hint = usingPsk
    ? 'it may have rejected the TLS session'
    : haveCertificate ? 'it may have rejected our client certificate' : 'it may require a client certificate';
  const message = `TLS: the server closed the connection right after the TLS handshake: ${hint}`;
  return (cause) => new NbdError('ECONNRESET', message, cause !== undefined ? { cause } : undefined);
}
