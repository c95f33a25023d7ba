// Read-only view of what a finished handshake negotiated, for nbdinfo and debug logs.
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type { TlsSessionInfo } from './types.js';

/** Describes the TLS session of `stream`, or undefined when it is not a TLS stream. */
export function tlsSessionInfo(stream: Duplex): TlsSessionInfo | undefined {
  if (!(stream instanceof TLSSocket) || !stream.encrypted) return undefined;
  const cipher = stream.getCipher();
  const name = cipher?.name ?? 'unknown';
  return {
    protocol: stream.getProtocol() ?? 'unknown',
    cipher: name,
    auth: name.includes('PSK') ? 'psk' : 'x509',
  };
}
