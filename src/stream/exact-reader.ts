// Exact-length reads over any Duplex (a socket, or the TLS stream after STARTTLS), for the
// handshake of either side. Handshake traffic is a few small messages, so a chunk queue is fine
// here; the transmission phase takes the leftover bytes over and parses incrementally instead.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';

export interface ExactReaderOptions {
  /** The error reads fail with when the stream ends or closes before enough bytes arrived. */
  endError: () => Error;
  /** The error reads fail with when the stream emits `err`. */
  streamError: (err: Error) => Error;
  /** Copy each chunk: for transports that may reuse their receive buffer once 'data' returns. */
  copyChunks?: boolean;
}

interface Waiter {
  n: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export class ExactReader {
  readonly stream: Duplex;
  private chunks: Buffer[] = [];
  private queued = 0;
  private received = false;
  private waiter: Waiter | null = null;
  private ended: Error | null = null;
  private readonly options: ExactReaderOptions;
  private readonly onData = (chunk: Buffer): void => {
    this.received = true;
    this.chunks.push(this.options.copyChunks ? Buffer.from(chunk) : chunk);
    this.queued += chunk.length;
    this.serve();
  };
  private readonly onEnd = (): void => this.fail(this.options.endError());
  private readonly onError = (err: Error): void => this.fail(this.options.streamError(err));

  constructor(stream: Duplex, options: ExactReaderOptions) {
    this.stream = stream;
    this.options = options;
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

  /** Bytes received but not read yet. */
  get pending(): number {
    return this.queued;
  }

  /** True once any byte arrived on the stream. */
  get receivedAny(): boolean {
    return this.received;
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

  /** Fails the pending read and every later one with `err` (the first failure wins). */
  fail(err: Error): void {
    if (this.ended) return;
    this.ended = err;
    const w = this.waiter;
    if (w) {
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
