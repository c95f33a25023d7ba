// Several connections to one export, when the server allows it (NBD_FLAG_CAN_MULTI_CONN),
// with commands handed out round-robin or to a chosen connection. Each connection keeps its
// own in-flight limit; with retries, each connection reopens itself when lost.
import { NbdError } from '../protocol/errors.js';
import { NbdClient } from './nbd-client.js';
import { connect, openTransport, prepareConnect, type ConnectOptions } from './connect.js';
import type { ReconnectingClient } from './reconnect.js';
import type { RetryOptions } from './retry-policy.js';
import type { ConnectTarget, Transport } from './transport.js';
import type {
  BlockStatusFlags, BlockStatusResult, CommandFlags, ConnectionInfo, ExportInfo, ReadFlags, ZeroFlags,
} from './types.js';
import { sumStats, type ConnectionStats } from './stats.js';
import type { CloseOptions } from './close-options.js';
import type { ChunkCallback } from './read-chunks.js';

/** connect()'s options, plus how many connections to open. */
export interface MultiConnOptions extends ConnectOptions {
  /** Connections wanted (default 4); 1 when the server does not advertise multi-conn. */
  connections?: number;
}

/**
 * Several connections to one export, opened with {@link MultiConn.open}. Each command goes to
 * the next connection in turn, or to connection `conn` when given; the commands are those of
 * {@link NbdClient}, with the same arguments.
 */
export class MultiConn<C extends NbdClient | ReconnectingClient = NbdClient> {
  /** The connections, the first one opened first. */
  readonly clients: C[];
  private next = 0;

  private constructor(clients: C[]) {
    this.clients = clients;
  }

  /**
   * Connects to `target` once, then opens `connections - 1` more connections when the export
   * advertises multi-conn (a `command` target serves one connection only).
   *
   * With `retries` (see connect()), every connection is a ReconnectingClient: it is opened
   * again when it could not be opened or was lost, on its own, while the others go on. Only
   * for a URI, `{ unixSocket }` or `{ host }` target.
   *
   * @example
   * ```ts
   * const m = await MultiConn.open(uri, { connections: 4, retries: 5, retryDelayMs: 500 });
   * await m.pread(new Uint8Array(65536), 0);
   * console.log(m.clients.map((c) => c.reconnections));
   * ```
   */
  static open(target: ConnectTarget, options: MultiConnOptions & RetryOptions): Promise<MultiConn<ReconnectingClient>>;
  static open(target: ConnectTarget, options?: MultiConnOptions): Promise<MultiConn<NbdClient>>;
  static async open(
    target: ConnectTarget, options: MultiConnOptions & Partial<RetryOptions> = {},
  ): Promise<MultiConn<NbdClient> | MultiConn<ReconnectingClient>> {
    if (options.retries !== undefined) return MultiConn.openRetrying(target, options as MultiConnOptions & RetryOptions);
    const { connections = 4, ...rest } = options;
    const opts = prepareConnect(target, { ...rest, optMode: false });
    const plain = (opts.tls?.mode ?? 'off') === 'off';
    const first = await openTransport(target, plain, opts);
    const clients = [await start(first, opts)];
    const multi = clients[0]!.export.canMultiConn && connections > 1;
    // A command on stdin/stdout serves exactly one client; socket activation can take more.
    const again = (): Promise<Transport> | null => {
      if (first.reconnect) return first.reconnect();
      if (typeof target === 'object' && ('command' in target || 'fd' in target || 'socket' in target)) return null;
      return openTransport(target, plain, opts);
    };
    if (multi) {
      try {
        const more = await Promise.all(Array.from({ length: connections - 1 }, async () => {
          const t = again();
          return t ? start(await t, opts) : null;
        }));
        for (const c of more) if (c) clients.push(c);
      } catch (err) {
        await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
        throw err;
      }
    }
    return new MultiConn(clients);
  }

  /** open() with retries: connect() opens each connection, so each one retries on its own. */
  private static async openRetrying(target: ConnectTarget, options: MultiConnOptions & RetryOptions): Promise<MultiConn<ReconnectingClient>> {
    const { connections = 4, ...rest } = options;
    const opts = { ...rest, optMode: false };
    const clients = [await connect(target, opts)];
    if (clients[0]!.export.canMultiConn && connections > 1) {
      const more = await Promise.allSettled(Array.from({ length: connections - 1 }, () => connect(target, opts)));
      for (const r of more) if (r.status === 'fulfilled') clients.push(r.value);
      const failed = more.find((r) => r.status === 'rejected');
      if (failed !== undefined) {
        await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
        throw failed.reason;
      }
    }
    return new MultiConn(clients);
  }

  /** How many connections are open. */
  get connections(): number {
    return this.clients.length;
  }

  /** The export, as the first connection saw it. */
  get export(): ExportInfo {
    return this.clients[0]!.export;
  }

  /** What the first connection negotiated. */
  get connection(): ConnectionInfo {
    return this.clients[0]!.connection;
  }

  /**
   * The counters of every connection, summed (each one's: `clients[i].stats`).
   *
   * @example
   * ```ts
   * const m = await MultiConn.open(uri, { connections: 4 });
   * await m.pread(new Uint8Array(65536), 0);
   * console.log(m.stats.bytesReceived);
   * ```
   */
  get stats(): ConnectionStats {
    return sumStats(this.clients.map((c) => c.stats));
  }

  /** Connection `index` (modulo the count), or the next one round-robin when undefined. */
  client(index?: number): C {
    if (index === undefined) {
      index = this.next;
      this.next = (this.next + 1) % this.clients.length;
    }
    const c = this.clients[index % this.clients.length];
    if (!c) throw new NbdError('ENOTCONN', 'multi-conn: no connection');
    return c;
  }

  /** Reads `buf.length` bytes at `offset` into `buf`. */
  pread(buf: Uint8Array, offset: number, flags?: ReadFlags, conn?: number): Promise<void> {
    return this.client(conn).pread(buf, offset, flags);
  }

  /** Writes `buf` at `offset`. */
  pwrite(buf: Uint8Array, offset: number, flags?: CommandFlags, conn?: number): Promise<void> {
    return this.client(conn).pwrite(buf, offset, flags);
  }

  /** Writes `length` zero bytes at `offset` without sending them. */
  zero(length: number, offset: number, flags?: ZeroFlags, conn?: number): Promise<void> {
    return this.client(conn).zero(length, offset, flags);
  }

  /** Tells the server `length` bytes at `offset` are no longer needed. */
  trim(length: number, offset: number, flags?: CommandFlags, conn?: number): Promise<void> {
    return this.client(conn).trim(length, offset, flags);
  }

  /** Asks the server to prefetch `length` bytes at `offset`. */
  cache(length: number, offset: number, conn?: number): Promise<void> {
    return this.client(conn).cache(length, offset);
  }

  /** Extents of each negotiated meta context over `length` bytes at `offset`. */
  blockStatus(length: number, offset: number, flags?: BlockStatusFlags, conn?: number): Promise<BlockStatusResult> {
    return this.client(conn).blockStatus(length, offset, flags);
  }

  /** NbdClient.preadStructured on the next connection (or `conn`). */
  preadStructured(buf: Uint8Array, offset: number, onChunk: ChunkCallback, flags?: ReadFlags, conn?: number): Promise<void> {
    return this.client(conn).preadStructured(buf, offset, onChunk, flags);
  }

  /** NbdClient.blockStatusFilter on the next connection (or `conn`). */
  blockStatusFilter(
    length: number, offset: number, contexts: readonly string[], flags?: BlockStatusFlags, conn?: number,
  ): Promise<BlockStatusResult> {
    return this.client(conn).blockStatusFilter(length, offset, contexts, flags);
  }

  /** Flushes every connection (multi-conn servers make one flush cover all, but be safe). */
  async flush(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.flush()));
  }

  /** Closes every connection (`options` as NbdClient.close); the first one last, since it owns any subprocess. */
  async close(options?: CloseOptions): Promise<void> {
    const [first, ...rest] = this.clients;
    await Promise.all(rest.map((c) => c.close(options)));
    await first?.close(options);
  }
}

async function start(t: Transport, opts: ConnectOptions): Promise<NbdClient> {
  const c = new NbdClient(opts);
  await c.start(t);
  return c;
}
