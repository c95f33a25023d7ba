// Several connections to one export, when the server allows it (NBD_FLAG_CAN_MULTI_CONN),
// with commands handed out round-robin or to a chosen connection. Each connection keeps its
// own in-flight limit.
import { NbdError } from '../protocol/errors.js';
import { NbdClient } from './nbd-client.js';
import { openTransport, tlsFromUri, type ConnectOptions } from './connect.js';
import type { ConnectTarget, Transport } from './transport.js';
import type {
  BlockStatusFlags, BlockStatusResult, CommandFlags, ConnectionInfo, ExportInfo, ReadFlags, ZeroFlags,
} from './types.js';
import { parseNbdUri } from './uri.js';
import { sumStats, type ConnectionStats } from './stats.js';
import type { CloseOptions } from './close-options.js';

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
export class MultiConn {
  /** The connections, the first one opened first. */
  readonly clients: NbdClient[];
  private next = 0;

  private constructor(clients: NbdClient[]) {
    this.clients = clients;
  }

  /**
   * Connects to `target` once, then opens `connections - 1` more connections when the export
   * advertises multi-conn (a `command` target serves one connection only).
   */
  static async open(target: ConnectTarget, options: MultiConnOptions = {}): Promise<MultiConn> {
    const { connections = 4, ...rest } = options;
    const opts: ConnectOptions = { ...rest, optMode: false };
    if (typeof target === 'string') {
      const u = parseNbdUri(target);
      opts.exportName ??= u.exportName;
      const tls = tlsFromUri(u, rest.tls);
      if (tls) opts.tls = tls;
    }
    const plain = (opts.tls?.mode ?? 'off') === 'off';
    const first = await openTransport(target, plain);
    const clients = [await start(first, opts)];
    const multi = clients[0]!.export.canMultiConn && connections > 1;
    // A command on stdin/stdout serves exactly one client; socket activation can take more.
    const again = (): Promise<Transport> | null => {
      if (first.reconnect) return first.reconnect();
      if (typeof target === 'object' && ('command' in target || 'fd' in target || 'socket' in target)) return null;
      return openTransport(target, plain);
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
  client(index?: number): NbdClient {
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
