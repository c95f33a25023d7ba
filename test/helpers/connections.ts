// The servers and client connections a test file opened, released after each test: every
// client closed first (close errors ignored: the test may have broken it on purpose), then
// every server stopped.
import { afterEach } from 'vitest';
import { connect, type NbdClient } from '../../src/client/index.js';

export interface Stoppable {
  stop(): Promise<void>;
}

export interface Connections<S extends Stoppable> {
  /** Servers to stop after the test. */
  servers: S[];
  /** Clients to close after the test. */
  clients: NbdClient[];
  /** connect(), with the client closed after the test. */
  open(uri: string, opts?: Parameters<typeof connect>[1]): Promise<NbdClient>;
}

/** Registers the afterEach hook of this test file and returns the lists it empties. */
export function connectionsAfterEach<S extends Stoppable>(): Connections<S> {
  const servers: S[] = [];
  const clients: NbdClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  return {
    servers,
    clients,
    async open(uri, opts = {}) {
      const c = await connect(uri, opts);
      clients.push(c);
      return c;
    },
  };
}
