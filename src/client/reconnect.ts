// A connection that survives being lost: when the server goes away (reset, EOF, a restart,
// or a reply of ESHUTDOWN), the connection is opened again, after a growing pause, and every
// command that had no reply is sent again on it. NBD reads, writes, zeroes, trims, caches,
// flushes and block-status queries give the same result when repeated, so the caller sees
// each command succeed once. Wraps NbdClient through its public commands only.
import { NbdError } from '../protocol/errors.js';
import type { NbdClient, ClientState } from './nbd-client.js';
import { sumStats, type ConnectionStats } from './stats.js';
import type { CloseOptions } from './close-options.js';
import type { ChunkCallback } from './read-chunks.js';
import { backoffDelay, isServerAbsent, type RetryOptions } from './retry-policy.js';
import type {
  BlockStatusFlags, BlockStatusResult, CommandFlags, ConnectionInfo, ExportInfo, ReadFlags, ZeroFlags,
} from './types.js';

export type { RetryOptions, RetryEvent } from './retry-policy.js';

/** Errors that mean the connection, not the command, failed. */
const LOST = new Set<string>(['ECONNRESET', 'ESHUTDOWN', 'ENOTCONN']);

export function isConnectionLost(err: unknown): err is NbdError {
  return err instanceof NbdError && LOST.has(err.code);
}

export class ReconnectingClient {
  private current: NbdClient;
  private recovering: Promise<NbdClient> | undefined;
  /** Attempts since a command was last answered. */
  private attemptsInRow = 0;
  /** The connection was reopened and nothing has been answered on it yet. */
  private unproven = false;
  private closed = false;
  private wakeSleeper: (() => void) | undefined;
  /** Set once we gave up: every later command fails with it. */
  private finalError: NbdError | undefined;
  private closing: Promise<void> | undefined;
  /** Connections opened again so far. */
  reconnections = 0;
  private readonly delayMs: number;
  /** Counters of the connections lost so far. */
  private earlierStats: ConnectionStats = sumStats([]);

  constructor(
    first: NbdClient,
    private readonly reopen: () => Promise<NbdClient>,
    private readonly policy: RetryOptions,
  ) {
    this.current = first;
    this.delayMs = Math.max(0, policy.retryDelayMs ?? 1000);
  }

  get state(): ClientState {
    return this.finalError !== undefined ? 'dead' : this.closed ? 'closed' : this.current.state;
  }

  /** The error it gave up with, else the current connection's (see NbdClient.error). */
  get error(): NbdError | undefined {
    return this.finalError ?? this.current.error;
  }

  /** The current connection's name in debug messages (every connection it opens shares the options). */
  get name(): string {
    return this.current.name;
  }

  get export(): ExportInfo {
    return this.current.export;
  }

  get connection(): ConnectionInfo {
    return this.current.connection;
  }

  /**
   * Counters summed over every connection this client opened (lost ones included, so resent
   * commands count each time they were sent).
   *
   * @example
   * ```ts
   * const c = await connect(uri, { retries: 5 });
   * await c.pread(buf, 0);
   * console.log(c.stats.bytesReceived, c.reconnections);
   * ```
   */
  get stats(): ConnectionStats {
    return sumStats([this.earlierStats, this.current.stats]);
  }

  get inFlight(): number {
    return this.current.inFlight;
  }

  /** pwriteFromFile can use sendfile on the current connection. */
  get sendsFromFile(): boolean {
    return this.current.sendsFromFile;
  }

  get fileSendStats(): NbdClient['fileSendStats'] {
    return this.current.fileSendStats;
  }

  pread(buf: Uint8Array, offset: number, flags?: ReadFlags): Promise<void> {
    return this.run((c) => c.pread(buf, offset, flags));
  }

  /** `take` is called at most once over all the attempts: a resent read lands in the same buffer. */
  preadTake<B extends Uint8Array>(length: number, offset: number, take: () => B, flags?: ReadFlags): Promise<B> {
    let taken: B | undefined;
    const once = () => (taken ??= take());
    return this.run((c) => c.preadTake(length, offset, once, flags));
  }

  /**
   * As NbdClient's, except that the buffer is needed until the reply (it may have to be sent
   * again), so `onSent` is called once the write succeeded rather than when it left.
   */
  async pwrite(buf: Uint8Array, offset: number, flags?: CommandFlags, onSent?: () => void): Promise<void> {
    await this.run((c) => c.pwrite(buf, offset, flags));
    onSent?.();
  }

  /** The bytes stay in the file, so `onSent` may come when they first leave (once). */
  pwriteFromFile(fd: number, fileOffset: number, length: number, offset: number, flags?: CommandFlags, onSent?: () => void): Promise<void> {
    let sent = onSent === undefined;
    const once = () => {
      if (sent) return;
      sent = true;
      onSent!();
    };
    return this.run((c) => c.pwriteFromFile(fd, fileOffset, length, offset, flags, once));
  }

  zero(length: number, offset: number, flags?: ZeroFlags): Promise<void> {
    return this.run((c) => c.zero(length, offset, flags));
  }

  trim(length: number, offset: number, flags?: CommandFlags): Promise<void> {
    return this.run((c) => c.trim(length, offset, flags));
  }

  cache(length: number, offset: number): Promise<void> {
    return this.run((c) => c.cache(length, offset));
  }

  flush(): Promise<void> {
    return this.run((c) => c.flush());
  }

  blockStatus(length: number, offset: number, flags?: BlockStatusFlags): Promise<BlockStatusResult> {
    return this.run((c) => c.blockStatus(length, offset, flags));
  }

  /** NbdClient.blockStatusFilter, sent again on a reopened connection like any command. */
  blockStatusFilter(length: number, offset: number, contexts: readonly string[], flags?: BlockStatusFlags): Promise<BlockStatusResult> {
    return this.run((c) => c.blockStatusFilter(length, offset, contexts, flags));
  }

  /**
   * NbdClient.preadStructured. A read lost with its connection is sent again whole, so
   * `onChunk` may hear of a range a second time (with the same bytes).
   */
  preadStructured(buf: Uint8Array, offset: number, onChunk: ChunkCallback, flags?: ReadFlags): Promise<void> {
    return this.run((c) => c.preadStructured(buf, offset, onChunk, flags));
  }

  /**
   * Stops any attempt in progress, then closes the connection as NbdClient.close() does
   * (`options` as there: a timeout, or abandoning commands in flight, which are not resent).
   */
  close(options?: CloseOptions): Promise<void> {
    if (options?.abandonPending) {
      this.closed = true;
      void this.current.close(options);
    }
    this.closing ??= (async () => {
      this.closed = true;
      this.wakeSleeper?.();
      await this.recovering?.catch(() => undefined);
      await this.current.close(options);
    })();
    return this.closing;
  }

  disconnect(options?: CloseOptions): Promise<void> {
    return this.close(options);
  }

  private async run<T>(command: (c: NbdClient) => Promise<T>): Promise<T> {
    for (;;) {
      if (this.finalError !== undefined) throw this.finalError;
      const client = this.recovering !== undefined ? await this.recovering : this.current;
      try {
        const result = await command(client);
        if (this.unproven && client === this.current) {
          this.unproven = false;
          this.attemptsInRow = 0;
        }
        return result;
      } catch (err) {
        if (this.closed || this.policy.retries <= 0 || !isConnectionLost(err)) throw err;
        await this.recover(client, err);
      }
    }
  }

  /** The connection `lost` is gone: open another (once, however many commands noticed). */
  private recover(lost: NbdClient, err: NbdError): Promise<NbdClient> {
    if (this.recovering !== undefined) return this.recovering;
    if (lost !== this.current) return Promise.resolve(this.current);
    const recovering = this.reconnect(lost, err);
    this.recovering = recovering;
    const done = () => {
      if (this.recovering === recovering) this.recovering = undefined;
    };
    recovering.then(done, done);
    return recovering;
  }

  private async reconnect(lost: NbdClient, cause: NbdError): Promise<NbdClient> {
    // Nothing more will be answered there (the server said ESHUTDOWN, or the socket is
    // gone); closing it fails whatever is still pending, which then comes here too.
    void lost.close().catch(() => undefined);
    let error = cause;
    for (;;) {
      if (this.attemptsInRow >= this.policy.retries) {
        this.finalError = new NbdError(cause.code,
          `${cause.message} (gave up after ${this.policy.retries} reconnection attempt${this.policy.retries === 1 ? '' : 's'}`
          + `${error === cause ? '' : `; last: ${error.message}`})`, { cause: error });
        throw this.finalError;
      }
      const attempt = ++this.attemptsInRow;
      const delayMs = backoffDelay(this.delayMs, attempt);
      this.policy.onRetry?.({ attempt, delayMs, error, phase: 'reconnect' });
      await this.sleep(delayMs);
      if (this.closed) throw new NbdError('ESHUTDOWN', 'connection closed');
      let next: NbdClient;
      try {
        next = await this.reopen();
      } catch (err) {
        // A server that is back and says no (a TLS alert for a key it no longer accepts, an
        // export it no longer has) would say it again: only a server not there yet is waited for.
        if (err instanceof NbdError && !isServerAbsent(err)) {
          this.finalError = new NbdError(err.code, `${err.message} (on reconnecting after: ${cause.message})`, { cause: err });
          throw this.finalError;
        }
        error = err instanceof NbdError ? err : new NbdError('EIO', String(err), { cause: err });
        continue;
      }
      const was = this.current.export;
      const now = next.export;
      if (now.exactSize !== was.exactSize || (now.readOnly && !was.readOnly)) {
        await next.close().catch(() => undefined);
        this.finalError = new NbdError('EIO', `${cause.message}; after reconnecting, the export is not the same `
          + `(size ${was.exactSize} -> ${now.exactSize}, read-only ${was.readOnly} -> ${now.readOnly})`);
        throw this.finalError;
      }
      if (this.closed) {
        await next.close().catch(() => undefined);
        throw new NbdError('ESHUTDOWN', 'connection closed');
      }
      this.earlierStats = sumStats([this.earlierStats, this.current.stats]);
      this.current = next;
      this.unproven = true;
      this.reconnections++;
      return next;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeSleeper = undefined;
        resolve();
      }, ms);
      this.wakeSleeper = () => {
        clearTimeout(timer);
        this.wakeSleeper = undefined;
        resolve();
      };
    });
  }
}
