// Waits for a TLS handshake to finish on either side, with one outcome only: resolved once
// secure, or rejected (and the sockets destroyed) on error, early close or timeout.
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { NbdError } from '../protocol/errors.js';
import { closedDuringHandshake, handshakeError, type TlsSide } from './handshake-errors.js';

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;

export interface AwaitSecureOptions {
  side: TlsSide;
  usingPsk: boolean;
  timeoutMs: number;
  /** The plain socket under the TLS one, destroyed too on failure so nothing leaks. */
  raw: Duplex;
  /** Extra check once the handshake is done (e.g. the client certificate); throw to reject. */
  afterHandshake?: (tlsSocket: TLSSocket) => void;
}

/** Resolves on `event` ('secureConnect' for clients, 'secure'/'secureConnection' for servers). */
export function awaitSecure(tlsSocket: TLSSocket, event: string, opts: AwaitSecureOptions): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      const nbdErr = handshakeError(err, opts.side, opts.usingPsk);
      // Keep a listener so a late error from the dying socket cannot crash the process.
      tlsSocket.on('error', () => {});
      tlsSocket.destroy();
      opts.raw.destroy();
      reject(nbdErr);
    };
    const onSecure = (): void => {
      if (settled) return;
      try {
        opts.afterHandshake?.(tlsSocket);
      } catch (err) {
        fail(err);
        return;
      }
      settled = true;
      cleanup();
      resolve(tlsSocket);
    };
    const onError = (err: Error): void => fail(err);
    const onClose = (): void => fail(closedDuringHandshake(opts.side, opts.usingPsk));
    const timer = setTimeout(() => {
      fail(new NbdError('ETIMEDOUT', `TLS: handshake did not finish within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      tlsSocket.off(event, onSecure);
      tlsSocket.off('error', onError);
      tlsSocket.off('close', onClose);
      tlsSocket.off('end', onClose);
    };
    tlsSocket.on(event, onSecure);
    tlsSocket.on('error', onError);
    tlsSocket.on('close', onClose);
    tlsSocket.on('end', onClose);
  });
}
