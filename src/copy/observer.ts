// What a copy feature sees of a running copy. Progress, block hashes, a checkpoint journal, a
// rate limit and verification are each one observer in its own file; the caller registers
// them in order and the copy calls them at fixed points, without knowing what they are.
import type { Endpoint } from './endpoint.js';
import type { CopyPlan } from './plan.js';

/** Handed to `start`: what is about to be copied, and how. */
export interface CopyStart {
  readonly source: Endpoint;
  readonly destination: Endpoint;
  readonly plan: CopyPlan;
  /** Bytes to copy; undefined when the source is a stream of unknown length. */
  readonly size: number | undefined;
}

/** Handed to `end` once everything is written (and flushed when asked). */
export interface CopyEnd {
  readonly source: Endpoint;
  readonly destination: Endpoint;
  /** Bytes of the source covered (data and zeroes). */
  readonly bytes: number;
}

/**
 * Every hook is optional. A range below is [offset, offset + length) of the source, which is
 * the same range of the destination.
 *
 * Ordering: for one range the hooks run in the order listed here (beforeRead, data, done for
 * data; zero, done for zeroes), and for one event the observers run in the order registered.
 * Across ranges there is no order: lanes and connections complete out of order (only a copy
 * into a stream, and one from a stream, go strictly by offset). Each range is reported once
 * and the ranges tile the source without overlap; a range may be cut further than the source's
 * extents (requests are at most --request-size, and never cross a 128 MiB slice).
 *
 * A hook that throws, or a promise it returns that rejects, fails the copy with that error:
 * no new work starts, work in flight drains, the copy rejects. `data`, `zero` and `done` are
 * synchronous and on the hot path: keep them cheap (count, hash, append to a list); anything
 * slow belongs in `start`/`end` or in work the observer schedules itself.
 */
export interface CopyObserver {
  /**
   * Once, after the endpoints are open and the plan is made, before any request. May be
   * async (open a journal file, draw a progress bar).
   */
  start?(copy: CopyStart): void | Promise<void>;
  /**
   * Before each data read is issued. Return a promise to hold that read (and so the lane
   * behind it) back until it settles: a rate limit waits for tokens here. Return nothing to
   * let it go at once (no promise is created on the fast path).
   */
  beforeRead?(offset: number, length: number): Promise<void> | void;
  /**
   * The source's bytes at `offset`, just read, before they are written and before their
   * buffer goes back to the pool (after this call returns it may be reused for other data
   * at once). Read them only: never change them (they are what gets written) and never keep
   * the Buffer; copy or digest what you need now. This covers every byte of every data range,
   * zero blocks inside data included (zero detection happens after). When the copy sends a
   * file's bytes with sendfile, observers with this hook make it look at them through a memory
   * map instead, or read them as usual.
   */
  data?(offset: number, data: Buffer): void;
  /**
   * A range the source's extents say reads as zeroes: it is never read. Called before its
   * zero request (or, for a destination that already reads as zeroes, instead of one).
   */
  zero?(offset: number, length: number): void;
  /**
   * The range is on the destination: every write or zero request for it was acknowledged
   * (or needed none). Not durable until a flush: `end` comes after the final flush, when
   * the copy was asked to flush.
   */
  done?(offset: number, length: number): void;
  /**
   * Once, after the last range is done and the destination flushed (when asked), before
   * the endpoints close; not called when the copy fails. May be async: verification reads
   * both sides back here, and a rejection fails the copy.
   */
  end?(copy: CopyEnd): void | Promise<void>;
  /**
   * The copy failed (or was interrupted): no new work starts and what is in flight drains.
   * Let go of anything that holds reads back (a rate limit's waiting reads), so the drain
   * is quick. Called once, at the first error; `end` will not come.
   */
  failed?(error: unknown): void;
}

/** The registered observers, with each hook gathered once so calling none costs nothing. */
export class ObserverList {
  private readonly starts: CopyObserver[];
  private readonly befores: CopyObserver[];
  private readonly datas: CopyObserver[];
  private readonly zeroes: CopyObserver[];
  private readonly dones: CopyObserver[];
  private readonly ends: CopyObserver[];
  private readonly fails: CopyObserver[];
  /** Some observer wants the bytes of data ranges (see `data`). */
  readonly wantsData: boolean;

  constructor(observers: readonly CopyObserver[] = []) {
    this.starts = observers.filter((o) => o.start !== undefined);
    this.befores = observers.filter((o) => o.beforeRead !== undefined);
    this.datas = observers.filter((o) => o.data !== undefined);
    this.zeroes = observers.filter((o) => o.zero !== undefined);
    this.dones = observers.filter((o) => o.done !== undefined);
    this.ends = observers.filter((o) => o.end !== undefined);
    this.fails = observers.filter((o) => o.failed !== undefined);
    this.wantsData = this.datas.length > 0;
  }

  async start(copy: CopyStart): Promise<void> {
    for (const o of this.starts) await o.start!(copy);
  }

  /** Undefined unless some observer asked to wait. */
  beforeRead(offset: number, length: number): Promise<void> | undefined {
    if (this.befores.length === 0) return undefined;
    let waits: Promise<void>[] | undefined;
    for (const o of this.befores) {
      const w = o.beforeRead!(offset, length);
      if (w !== undefined) (waits ??= []).push(w);
    }
    if (waits === undefined) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  data(offset: number, data: Buffer): void {
    for (let i = 0; i < this.datas.length; i++) this.datas[i]!.data!(offset, data);
  }

  zero(offset: number, length: number): void {
    for (let i = 0; i < this.zeroes.length; i++) this.zeroes[i]!.zero!(offset, length);
  }

  done(offset: number, length: number): void {
    for (let i = 0; i < this.dones.length; i++) this.dones[i]!.done!(offset, length);
  }

  async end(copy: CopyEnd): Promise<void> {
    for (const o of this.ends) await o.end!(copy);
  }

  failed(error: unknown): void {
    for (const o of this.fails) o.failed!(error);
  }
}
