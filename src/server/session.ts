// One client connection from greeting to close, over any Duplex (Unix or TCP socket, stdin and
// stdout, a TLS stream after STARTTLS). Failures end this session only, never the server.
import type { Duplex } from 'node:stream';
import { closeOpened, lookupExport } from './backend-hooks.js';
import { sharedPool } from './buffer-pool.js';
import { EndSession, negotiate, type Negotiated } from './negotiate.js';
import type { SessionConfig } from './options.js';
import { Transmission } from './transmission.js';

export interface Session {
  /** Settles (never rejects) when the connection is gone. */
  readonly done: Promise<void>;
  destroy(): void;
}

export function runSession(stream: Duplex, config: SessionConfig): Session {
  let transmission: Transmission | undefined;
  let current: Duplex = stream;
  let n: Negotiated | undefined;
  // Unhandled 'error' events would crash the process; the session reports them instead.
  stream.on('error', () => {});
  // A client that never finishes the handshake must not hold a connection (and its slot under
  // --max-connections) for ever.
  const timer = config.handshakeTimeoutMs > 0 ? setTimeout(() => {
    config.log?.(`closing connection: no export chosen within ${config.handshakeTimeoutMs} ms (handshake timeout)`);
    current.destroy();
    stream.destroy();
  }, config.handshakeTimeoutMs) : undefined;
  timer?.unref();
  const done = (async () => {
    try {
      n = await negotiate(stream, config).finally(() => clearTimeout(timer));
      current = n.stream;
      if (current !== stream) current.on('error', () => {});
      config.log?.(`client entered transmission on export '${n.export.name}' (${['simple', 'structured', 'extended'][n.style]} replies)`);
      transmission = new Transmission(n, config, sharedPool);
      transmission.start();
      await transmission.done;
    } catch (err) {
      const why = err instanceof EndSession ? err.message : `handshake failed: ${(err as Error).message}`;
      config.log?.(`closing connection: ${why}`);
    } finally {
      clearTimeout(timer);
      current.destroy();
      if (current !== stream) stream.destroy();
      // A backend opened for this connection alone (the nbd backend's upstream) goes with it.
      const template = n && lookupExport(config, n.export.name)?.backend;
      if (n && template) await closeOpened(n.export, template);
    }
  })();
  return {
    done,
    destroy: () => {
      if (transmission) transmission.destroy();
      current.destroy();
      stream.destroy();
    },
  };
}
