// Traffic counters of one connection, as libnbd's nbd_stats_* report them: bytes and protocol
// chunks sent and received, from the greeting on. Plain number fields, bumped on the hot path.

/**
 * What a connection has put on and taken off the wire.
 *
 * - `bytesSent` / `bytesReceived`: every byte, handshake included (TLS: the plaintext bytes,
 *   not the records).
 * - `chunksSent`: client flags, each option and each request (a WRITE and its payload are
 *   one chunk).
 * - `chunksReceived`: the greeting, each option reply, each simple reply and each structured
 *   or extended reply chunk (a READ answered in 4 data chunks counts 4).
 *
 * @example
 * ```ts
 * const c = await connect('nbd+unix:///?socket=/tmp/sock');
 * await c.pread(new Uint8Array(4096), 0);
 * const { bytesReceived, chunksReceived } = c.stats;
 * console.log(`${bytesReceived} bytes in ${chunksReceived} chunks`);
 * ```
 */
export interface ConnectionStats {
  bytesSent: number;
  chunksSent: number;
  bytesReceived: number;
  chunksReceived: number;
}

/** The live counters a connection's reader, writer and handshake add to. */
export class StatsCounter implements ConnectionStats {
  bytesSent = 0;
  chunksSent = 0;
  bytesReceived = 0;
  chunksReceived = 0;

  /** A copy that no longer changes. */
  snapshot(): ConnectionStats {
    return {
      bytesSent: this.bytesSent, chunksSent: this.chunksSent,
      bytesReceived: this.bytesReceived, chunksReceived: this.chunksReceived,
    };
  }
}

/** Sum of several connections' counters (MultiConn, or a connection and its earlier lives). */
export function sumStats(all: Iterable<ConnectionStats>): ConnectionStats {
  const s: ConnectionStats = { bytesSent: 0, chunksSent: 0, bytesReceived: 0, chunksReceived: 0 };
  for (const x of all) {
    s.bytesSent += x.bytesSent;
    s.chunksSent += x.chunksSent;
    s.bytesReceived += x.bytesReceived;
    s.chunksReceived += x.chunksReceived;
  }
  return s;
}
