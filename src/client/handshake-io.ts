// Byte-exact reads during the handshake, over any Duplex (a socket, or the TLS stream after
// STARTTLS). Handshake traffic is small, so a chunk queue is fine here; the transmission phase
// takes the leftover bytes over and parses incrementally instead.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';

interface Waiter {
  n: number;
  resolve: (b: Buffer) => void;
  reject: (e: NbdError) => void;
}

export class HandshakeIO {
  readonly stream: Duplex;
  private chunks: Buffer[] = [];
  private queued = 0;
  private waiter: Waiter | null = null;
  private ended: NbdError | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.closedBeforeData = undefined;
    // Copy: a transport may reuse its receive buffer once this event returns.
    this.chunks.push(Buffer.from(chunk));
    this.queued += chunk.length;
    this.serve();
  };
  /** Set until the first byte arrives; see the constructor. */
  private closedBeforeData: ((cause?: Error) => NbdError) | undefined;
  private readonly onEnd = (): void =>
    this.fail(this.closedBeforeData?.() ?? new NbdError('ECONNRESET', 'server closed the connection during the handshake'));
  private readonly onError = (err: Error): void =>
    this.fail(this.closedBeforeData?.(err)
      ?? new NbdError('ECONNRESET', `connection failed during the handshake: ${err.message}`, { cause: err }));

  /**
   * `closedBeforeData` words the error when the stream ends or fails before the server sent
   * anything on it (right after STARTTLS, that close is the server's verdict on our credentials).
   */
  constructor(stream: Duplex, closedBeforeData?: (cause?: Error) => NbdError) {
    this.stream = stream;
    this.closedBeforeData = closedBeforeData;
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
    stream.resume();
  }

  /** Resolves with exactly `n` bytes, or rejects when the stream ends first. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new NbdError('EINVAL', 'handshake: concurrent reads'));
    if (this.queued >= n) return Promise.resolve(this.take(n));
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
    });
  }

  write(data: Uint8Array): void {
    this.stream.write(data);
  }

  /** True when the server sent bytes we have not read yet. */
  get pending(): number {
    return this.queued;
  }

  /** Stops listening (pausing the stream) and hands back bytes received but not yet read. */
  detach(): Buffer[] {
    this.stream.pause();
    this.stream.off('data', this.onData);
    this.stream.off('end', this.onEnd);
    this.stream.off('close', this.onEnd);
    this.stream.off('error', this.onError);
    const left = this.chunks;
    this.chunks = [];
    this.queued = 0;
    return left;
  }

  /** Fails the pending and later reads with `err` and drops the connection (timeouts). */
  abort(err: NbdError): void {
    this.fail(err);
    this.stream.destroy();
  }

  private fail(err: NbdError): void {
    if (this.ended) return;
    this.ended = err;
    const w = this.waiter;
    if (w && this.queued < w.n) {
      this.waiter = null;
      w.reject(err);
    }
  }

  private serve(): void {
    const w = this.waiter;
    if (w && this.queued >= w.n) {
      this.waiter = null;
      w.resolve(this.take(w.n));
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.queued -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - got);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.queued -= n;
    return out;
  }
}
