// Shared state of one running copy (the first error, bytes done, buffers, the observers) and
// what every strategy does with a range: send its zeroes, or write its data with all-zero
// blocks turned into zero requests.
import { NbdError } from '../protocol/errors.js';
import type { Endpoint } from './endpoint.js';
import type { CopyOptions } from './options.js';
import type { CopyPlan } from './plan.js';
import type { ConnectionPlanner } from './planner.js';
import { ObserverList, type CopyObserver } from './observer.js';
import { isZeroRange } from './zero-buffer.js';
import { BufferPool } from './buffer-pool.js';
import { SendWindow } from './send-window.js';

/**
 * Read-but-unsent bytes allowed per destination connection when a local file feeds an NBD
 * destination. Beyond the kernel's socket buffer this only has to cover the time to read the
 * next request.
 */
const SEND_WINDOW = 1024 * 1024;

/** Bytes of the source by what was done with them. */
export interface CopyStats {
  /** Sent as data (writes). */
  written: number;
  /** Sent as zero requests (zero extents, and all-zero blocks found in data). */
  zeroed: number;
  /** Zero extents that needed nothing: the destination already read as zeroes. */
  skipped: number;
}

export class CopyRun {
  error: unknown;
  /** Bytes of the source done (written and acknowledged, or needing nothing). */
  done = 0;
  /** Where the bytes went, counted as requests are issued (exact once the copy succeeded). */
  readonly stats: CopyStats = { written: 0, zeroed: 0, skipped: 0 };
  readonly planners: ConnectionPlanner[] = [];
  readonly pool: BufferPool;
  readonly observers: ObserverList;
  /** Per destination connection, for local sources whose destination says when a buffer is free. */
  readonly windows: SendWindow[] = [];
  /** The destination calls onSent once a buffer may be reused (before the write completes). */
  readonly releaseEarly: boolean;
  /**
   * Source file descriptor whose data the destination takes without a read (sendfile), or
   * undefined. Such data is never looked at, so zero blocks inside it are written as data:
   * holes still come from the source's extents (SEEK_DATA / SEEK_HOLE).
   */
  readonly fileFd: number | undefined;
  private readonly skipZero: boolean;

  constructor(
    readonly source: Endpoint,
    readonly destination: Endpoint,
    readonly options: CopyOptions,
    readonly plan: CopyPlan,
    observers: readonly CopyObserver[],
  ) {
    this.skipZero = !destination.sequential && !options.allocated && (destination.isZero || options.destinationIsZero);
    this.pool = new BufferPool(plan.requestSize);
    this.observers = new ObserverList(observers);
    this.releaseEarly = destination.releasesEarly === true;
    this.fileFd = source.fileSource !== undefined && destination.fileSink !== undefined && !plan.sequential
      ? source.fileSource.fd : undefined;
    // Only for local sources, whose reads finish at once: a window on an NBD source would
    // also cap the reads in flight, and a slow server needs many of those (-R).
    if (this.releaseEarly && !plan.sequential && source.local) {
      const limit = Math.max(SEND_WINDOW, plan.requestSize);
      for (let c = 0; c < plan.connections; c++) this.windows.push(new SendWindow(limit));
    }
  }

  fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = err;
    for (const p of this.planners) p.stopped = true;
    for (const w of this.windows) w.openAll();
    this.observers.failed(err);
  }

  /** A range the source's extents say is zero: tell the observers, then zero it if needed. */
  zeroRange(offset: number, length: number, conn: number): Promise<void> | undefined {
    this.observers.zero(offset, length);
    return this.zeroOut(offset, length, conn);
  }

  /** The range is on the destination. */
  completed(offset: number, length: number): void {
    this.done += length;
    this.observers.done(offset, length);
  }

  private zeroOut(offset: number, length: number, conn: number): Promise<void> | undefined {
    if (this.skipZero) {
      this.stats.skipped += length;
      return undefined;
    }
    this.stats.zeroed += length;
    return this.destination.zero(offset, length, this.options.allocated, conn);
  }

  /**
   * Writes `view` (source bytes at `offset`), turning all-zero blocks into zero requests.
   * `onSent` is passed to the last write (writes on one connection leave in order, so the
   * buffer is free once that one is sent), or called at once when the last run is zeroes.
   */
  async writeData(view: Buffer, offset: number, conn: number, onSent?: () => void): Promise<void> {
    if (this.plan.sparseSize === 0) {
      this.stats.written += view.length;
      return this.destination.write(view, offset, conn, onSent);
    }
    return this.writeRuns(this.zeroRuns(view), offset, conn, onSent, (from, to, sent) => {
      this.stats.written += to - from;
      const part = from === 0 && to === view.length ? view : view.subarray(from, to);
      return this.destination.write(part, offset + from, conn, sent);
    });
  }

  /**
   * The same for a file source whose data the destination takes straight from the file
   * (sendfile). `mapped` is the file's bytes there (its memory map) when zero detection is
   * on: only looked at, all before the first await, so their pages can leave our RSS at once.
   */
  async writeFileData(fd: number, mapped: Buffer | undefined, offset: number, length: number, conn: number, onSent?: () => void): Promise<void> {
    const sink = this.destination.fileSink!;
    if (mapped === undefined || this.plan.sparseSize === 0) {
      if (mapped !== undefined) this.source.fileSource!.releaseMappedBytes(offset, length);
      this.stats.written += length;
      return sink.writeFromFile(fd, offset, length, conn, onSent);
    }
    const runs = this.zeroRuns(mapped);
    this.source.fileSource!.releaseMappedBytes(offset, length);
    return this.writeRuns(runs, offset, conn, onSent, (from, to, sent) => {
      this.stats.written += to - from;
      return sink.writeFromFile(fd, offset + from, to - from, conn, sent);
    });
  }

  /**
   * Where `view` changes between runs of all-zero sparseSize blocks and runs of data: pairs
   * (start, isZero as 1/0) per run, then the length at the end.
   */
  private zeroRuns(view: Buffer): number[] {
    const s = this.plan.sparseSize;
    const len = view.length;
    let runZero = isZeroRange(view, 0, Math.min(s, len));
    const runs = [0, runZero ? 1 : 0];
    for (let b = s; b < len; b += s) {
      const z = isZeroRange(view, b, Math.min(s, len - b));
      if (z === runZero) continue;
      runs.push(b, z ? 1 : 0);
      runZero = z;
    }
    runs.push(len);
    return runs;
  }

  /**
   * Zero runs become zero requests, data runs go to `sendData`. `onSent` is passed to the
   * last run's write, or called at once when the last run is zeroes.
   */
  private async writeRuns(
    runs: number[], offset: number, conn: number, onSent: (() => void) | undefined,
    sendData: (from: number, to: number, onSent?: () => void) => Promise<void>,
  ): Promise<void> {
    for (let i = 0; i + 2 < runs.length; i += 2) {
      const from = runs[i]!;
      const to = runs[i + 2]!;
      const last = i + 3 >= runs.length;
      if (runs[i + 1] === 1) {
        if (last) onSent?.();
        await this.zeroOut(offset + from, to - from, conn);
      } else {
        await sendData(from, to, last ? onSent : undefined);
      }
    }
  }

  /** Aborting `options.signal` fails the run; returns the function that stops listening. */
  watchSignal(): () => void {
    const signal = this.options.signal;
    if (signal === undefined) return () => {};
    const onAbort = () => this.fail(abortError(signal));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    return () => signal.removeEventListener('abort', onAbort);
  }
}

function abortError(signal: AbortSignal): NbdError {
  const reason = signal.reason;
  if (reason instanceof NbdError) return reason;
  return new NbdError('EINTR', typeof reason === 'string' ? reason : 'interrupted');
}
