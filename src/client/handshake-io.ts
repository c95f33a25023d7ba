// The client's side of the handshake over any Duplex (a socket, or the TLS stream after
// STARTTLS): exact-length reads from the shared ExactReader, with the client's error wording.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import { ExactReader } from '../stream/exact-reader.js';
import { StatsCounter } from './stats.js';

export class HandshakeIO {
  readonly stream: Duplex;
  /** The connection's counters: bytes read and written here, and a chunk per write. */
  readonly stats: StatsCounter;
  private readonly reader: ExactReader;

  /**
   * `closedBeforeData` words the error when the stream ends or fails before the server sent
   * anything on it (right after STARTTLS, that close is the server's verdict on our credentials).
   */
  constructor(stream: Duplex, closedBeforeData?: (cause?: Error) => NbdError, stats = new StatsCounter()) {
    this.stream = stream;
    this.stats = stats;
    const beforeData = (cause?: Error): NbdError | undefined =>
      this.reader.receivedAny ? undefined : closedBeforeData?.(cause);
    this.reader = new ExactReader(stream, {
      // Copy: a transport may reuse its receive buffer once the 'data' event returns.
      copyChunks: true,
      endError: () => beforeData() ?? new NbdError('ECONNRESET', 'server closed the connection during the handshake'),
      streamError: (err) => beforeData(err)
        ?? new NbdError('ECONNRESET', `connection failed during the handshake: ${err.message}`, { cause: err }),
    });
  }

  /** Resolves with exactly `n` bytes, or rejects when the stream ends first. */
  read(n: number): Promise<Buffer> {
    return this.reader.read(n).then((b) => {
      this.stats.bytesReceived += n;
      return b;
    });
  }

  /** Writes one chunk (client flags or an option). */
  write(data: Uint8Array): void {
    this.stats.bytesSent += data.length;
    this.stats.chunksSent++;
    this.stream.write(data);
  }

  /** True when the server sent bytes we have not read yet. */
  get pending(): number {
    return this.reader.pending;
  }

  /** Stops listening (pausing the stream) and hands back bytes received but not yet read. */
  detach(): Buffer[] {
    return this.reader.detach();
  }

  /** Fails the pending and later reads with `err` and drops the connection (timeouts). */
  abort(err: NbdError): void {
    this.reader.fail(err);
    this.stream.destroy();
  }
}
