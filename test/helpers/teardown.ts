// The one teardown of every test file: what a test opened, started or made is undone by a
// single afterEach hook — clients closed first (close errors ignored: the test may have broken
// them on purpose), then servers stopped, then the other undo steps newest first, one at a time
// (a proxy before its server, a server before its temp dir).
import { afterEach } from 'vitest';
import { connect, type NbdClient } from '../../src/client/index.js';
import { makeTempDir, removeDir } from './temp.js';

export type Cleanup = () => Promise<unknown> | unknown;

/** A server of any kind: ours stops with close(), the test helpers' servers with stop(). */
export type Stoppable = { stop(): Promise<void> } | { close(): Promise<void> };

export interface Teardown<S extends Stoppable = Stoppable> {
  /** Servers to stop after the test. */
  servers: S[];
  /** Clients to close after the test. */
  clients: Array<{ close(): Promise<void> }>;
  /** Adds an undo step, run after the clients and servers, newest first. */
  push(...undo: Cleanup[]): void;
  /** connect(), with the client closed after the test. */
  open(uri: string, opts?: Parameters<typeof connect>[1]): Promise<NbdClient>;
  /** A fresh temp dir, removed after the test. */
  tempDir(prefix?: string): string;
  /** Undoes everything registered so far, now: for a property test, after each generated case. */
  now(): Promise<void>;
}

/** Registers the afterEach hook of this test file and returns what it empties. */
export function teardownAfterEach<S extends Stoppable = Stoppable>(): Teardown<S> {
  const servers: S[] = [];
  const clients: Array<{ close(): Promise<void> }> = [];
  const undo: Cleanup[] = [];
  const now = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
    await Promise.all(servers.splice(0).map((s) => ('stop' in s ? s.stop() : s.close())));
    while (undo.length) await undo.pop()!();
  };
  afterEach(now);
  return {
    servers,
    clients,
    push: (...steps) => void undo.push(...steps),
    async open(uri, opts = {}) {
      const c = await connect(uri, opts);
      clients.push(c);
      return c;
    },
    tempDir(prefix) {
      const dir = makeTempDir(prefix);
      undo.push(() => removeDir(dir));
      return dir;
    },
    now,
  };
}
