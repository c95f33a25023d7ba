// The copy pipeline. Per connection, `lanes` async loops each own one pooled buffer and pull
// work from that connection's planner: read -> (zero detection) -> write, or a zero request.
// Memory is lanes × connections × requestSize whatever the disk size. The first error stops
// every planner; lanes finish the request they hold (drain) and the copy rejects.
import { NbdError } from '../protocol/errors.js';
import type { Endpoint } from './endpoint.js';
import type { CopyOptions } from './options.js';
import { MAX_REQUEST_SIZE } from './options.js';
import { ConnectionPlanner, SliceDealer, type WorkItem } from './planner.js';
import { isZeroRange } from './zero-buffer.js';
import { wrapError } from './errors.js';
import { BufferPool } from './buffer-pool.js';
import { SendWindow } from './send-window.js';
import { copyInOrder } from './ordered-copy.js';
import { copyFromStream } from './stream-copy.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Largest zero request we issue; NBD endpoints split further if a server objects. */
const MAX_ZERO_REQUEST = GiB;
/** Bytes of extents asked for at once (block status lengths are 32-bit without extended headers). */
const EXTENT_WINDOW = 4 * GiB - 64 * MiB;
/**
 * Largest slice of the disk handed to one connection. Slices only cost an extents call each,
 * so mostly-empty disks want them big; four per connection keep the work balanced. One
 * extent window exactly, so a big empty slice is one block status round trip, not two.
 */
const MAX_SLICE = EXTENT_WINDOW;
/** Requests in flight when neither side is an NBD server (libuv's default thread pool size). */
const LOCAL_IN_FLIGHT = 4;
/**
 * Read-but-unsent bytes allowed per destination connection when a local file feeds an NBD
 * destination. Beyond the kernel's socket buffer this only has to cover the time to read the
 * next request; measured with a 1 GiB file to nbdkit: 512 KiB - 2 MiB all keep the socket busy.
 */
const SEND_WINDOW = 1 * MiB;

export interface CopyPlan {
  connections: number;
  lanesPerConnection: number;
  requestSize: number;
  sparseSize: number;
  sliceSize: number;
  sequential: boolean;
}

export interface CopyResult extends CopyPlan {
  /** Bytes of the source covered (data and zeroes). */
  bytes: number;
}

function alignDown(n: number, to: number): number {
  return n - (n % to);
}

function connectionCap(e: Endpoint): number {
  return e.maxConnections === Infinity ? Infinity : Math.min(e.maxConnections, e.connections);
}

/** Checks sizes, opens extra connections, and derives the plan. Writes nothing. */
export async function planCopy(source: Endpoint, destination: Endpoint, options: CopyOptions): Promise<CopyPlan> {
  if (source.size !== undefined && destination.size !== undefined && destination.size < source.size) {
    throw new NbdError('ENOSPC',
      `${destination.name}: destination size (${destination.size}) is smaller than source size (${source.size})`);
  }
  // A server may only be asked for whole blocks of its minimum size, so such a tail can never
  // be read (the protocol says so too): refuse now rather than fail on the last request.
  const unreadable = source.size !== undefined && source.minimumBlockSize > 1 ? source.size % source.minimumBlockSize : 0;
  if (unreadable !== 0) {
    throw new NbdError('EINVAL', `${source.name}: source size (${source.size}) is not a multiple of its minimum block size `
      + `(${source.minimumBlockSize}), so its last ${unreadable} bytes cannot be read`);
  }
  const sequential = options.synchronous || source.sequential || destination.sequential || source.size === undefined;
  let connections = 1;
  if (readsAhead(source, destination, options)) {
    // Only the source runs requests side by side; the destination takes them in order.
    connections = Math.max(1, Math.min(options.connections, source.maxConnections));
    if (connections > 1 && source.maxConnections !== Infinity) {
      await source.setConnections?.(connections);
      connections = Math.max(1, Math.min(connections, connectionCap(source)));
    }
  } else if (!sequential) {
    connections = Math.max(1, Math.min(options.connections, source.maxConnections, destination.maxConnections));
    if (connections > 1) {
      await source.setConnections?.(connections);
      await destination.setConnections?.(connections);
      connections = Math.max(1, Math.min(connections, connectionCap(source), connectionCap(destination)));
    }
  }
  const minBlock = Math.max(source.minimumBlockSize, destination.minimumBlockSize, 1);
  const maxBlock = Math.min(source.maximumBlockSize, destination.maximumBlockSize, MAX_REQUEST_SIZE);
  const requestSize = Math.max(minBlock, alignDown(Math.min(options.requestSize, maxBlock), minBlock));
  let sparseSize = 0;
  const worthDetecting = !destination.discards && !destination.sequential
    && (destination.canZero || destination.isZero || options.destinationIsZero);
  if (options.sparseSize > 0 && worthDetecting) {
    // Zero runs split writes at multiples of sparseSize: keep those on the block boundaries.
    sparseSize = Math.min(requestSize, Math.ceil(options.sparseSize / minBlock) * minBlock);
  }
  const parallel = !sequential || readsAhead(source, destination, options) || writesBehind(source, destination, options);
  let lanesPerConnection = parallel ? Math.max(1, Math.min(options.requests, Math.floor(options.queueSize / requestSize))) : 1;
  if (parallel && isLocal(source) && isLocal(destination)) {
    // Local to local (files, pipes): every request is a thread-pool job (4 threads); more in
    // flight only queues, and concurrent writers to one file contend in the kernel.
    connections = 1;
    lanesPerConnection = Math.min(lanesPerConnection, LOCAL_IN_FLIGHT);
  }
  const size = source.size ?? 0;
  const sliceSize = sequential
    ? Math.max(size, 1)
    : Math.max(requestSize, alignDown(Math.min(MAX_SLICE, Math.max(16 * MiB, Math.ceil(size / (connections * 4)))), requestSize));
  return { connections, lanesPerConnection, requestSize, sparseSize, sliceSize, sequential };
}

/** Files, devices, pipes and null: (no server on the other end of a socket). */
function isLocal(e: Endpoint): boolean {
  return e.maxConnections === Infinity || e.sequential;
}

/** A random-access source feeding a stream: reads run ahead, writes go out in order. */
function readsAhead(source: Endpoint, destination: Endpoint, options: CopyOptions): boolean {
  return !options.synchronous && destination.sequential && !source.sequential && source.size !== undefined;
}

/** A stream feeding a random-access destination: read in order, several writes in flight. */
function writesBehind(source: Endpoint, destination: Endpoint, options: CopyOptions): boolean {
  return !options.synchronous && source.size === undefined && !destination.sequential;
}

/** Copies source to destination (both already open). Does not close them. */
export async function copy(source: Endpoint, destination: Endpoint, options: CopyOptions): Promise<CopyResult> {
  const plan = await planCopy(source, destination, options);
  options.log?.(`copy plan: ${JSON.stringify(plan)}`);
  const bytes = source.size === undefined
    ? await copyStream(source, destination, options, plan)
    : await copyExtents(source, destination, options, plan, readsAhead(source, destination, options));
  if (options.flush) await destination.flush();
  return { ...plan, bytes };
}

/** Shared state of one running copy: the first error, and how far we got. */
export class CopyRun {
  error: unknown;
  done = 0;
  readonly planners: ConnectionPlanner[] = [];
  readonly pool: BufferPool;
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
  ) {
    this.skipZero = destination.discards
      || (!destination.sequential && !options.allocated && (destination.isZero || options.destinationIsZero));
    this.pool = new BufferPool(plan.requestSize);
    this.releaseEarly = destination.releasesEarly === true;
    this.fileFd = source.fileDescriptor !== undefined && destination.writeFromFile !== undefined && !plan.sequential
      ? source.fileDescriptor : undefined;
    // Only for local sources, whose reads finish at once: a window on an NBD source would
    // also cap the reads in flight, and a slow server needs many of those (-R).
    if (this.releaseEarly && !plan.sequential && source.maxConnections === Infinity) {
      const limit = Math.max(SEND_WINDOW, plan.requestSize);
      for (let c = 0; c < plan.connections; c++) this.windows.push(new SendWindow(limit));
    }
  }

  fail(err: unknown): void {
    if (this.error !== undefined) return;
    this.error = err;
    for (const p of this.planners) p.stopped = true;
    for (const w of this.windows) w.openAll();
  }

  zeroOut(offset: number, length: number, conn: number): Promise<void> | undefined {
    if (this.skipZero) return undefined;
    return this.destination.zero(offset, length, this.options.allocated, conn);
  }

  /**
   * Writes `view` (source bytes at `offset`), turning all-zero blocks into zero requests.
   * `onSent` is passed to the last write (writes on one connection leave in order, so the
   * buffer is free once that one is sent), or called at once when the last run is zeroes.
   */
  async writeData(view: Buffer, offset: number, conn: number, onSent?: () => void): Promise<void> {
    if (this.plan.sparseSize === 0) return this.destination.write(view, offset, conn, onSent);
    return this.writeRuns(this.zeroRuns(view), offset, conn, onSent, (from, to, sent) => {
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
    const { destination, source } = this;
    if (mapped === undefined) return destination.writeFromFile!(fd, offset, length, offset, conn, onSent);
    const runs = this.zeroRuns(mapped);
    source.releaseMappedBytes?.(offset, length);
    return this.writeRuns(runs, offset, conn, onSent,
      (from, to, sent) => destination.writeFromFile!(fd, offset + from, to - from, offset + from, conn, sent));
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

  progress(n: number): void {
    this.done += n;
    this.options.onProgress?.(this.done);
  }

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

async function copyExtents(
  source: Endpoint, destination: Endpoint, options: CopyOptions, plan: CopyPlan, inOrder: boolean,
): Promise<number> {
  const size = source.size!;
  const run = new CopyRun(source, destination, options, plan);
  const dealer = new SliceDealer(size, plan.sliceSize);
  const limits = {
    requestSize: plan.requestSize,
    zeroSize: Math.max(plan.requestSize, alignDown(MAX_ZERO_REQUEST, plan.requestSize)),
    extentWindow: Math.min(EXTENT_WINDOW, plan.sliceSize),
    useExtents: !options.noExtents && source.canExtents,
  };
  const unwatch = run.watchSignal();
  if (inOrder) {
    // One planner walks the whole disk in order; its reads are spread over the connections.
    run.planners.push(new ConnectionPlanner(source, 0, dealer, limits));
    await copyInOrder(run, run.planners[0]!, plan.connections, plan.connections * plan.lanesPerConnection, plan.requestSize);
    unwatch();
    if (run.error !== undefined) throw run.error;
    return run.done;
  }
  for (let c = 0; c < plan.connections; c++) run.planners.push(new ConnectionPlanner(source, c, dealer, limits));
  const lanes: Promise<void>[] = [];
  for (let c = 0; c < plan.connections; c++) {
    for (let l = 0; l < plan.lanesPerConnection; l++) lanes.push(lane(run, run.planners[c]!, c));
  }
  await Promise.all(lanes);
  unwatch();
  if (run.error !== undefined) throw run.error;
  return run.done;
}

async function lane(run: CopyRun, planner: ConnectionPlanner, conn: number): Promise<void> {
  const item: WorkItem = { offset: 0, length: 0, zero: false };
  try {
    while (await planner.next(item)) {
      if (item.zero) await run.zeroOut(item.offset, item.length, conn);
      else await copyData(run, item.offset, item.length, conn);
      run.progress(item.length);
    }
  } catch (err) {
    run.fail(err);
  }
}

/**
 * One data request: a pooled buffer (taken, for local sources, only once the destination
 * connection has room to send it) goes back to the pool as soon as its payload has left or
 * the request ends, so a few hot buffers serve all the requests in flight.
 */
async function copyData(run: CopyRun, offset: number, length: number, conn: number): Promise<void> {
  const window = run.windows[conn];
  if (window !== undefined) {
    const wait = window.acquire(length);
    if (wait !== undefined) await wait;
    if (run.error !== undefined) {
      window.release(length);
      return;
    }
  }
  // No buffer: the kernel moves the bytes from the page cache to the socket. Zero detection
  // looks at them through a memory map (no copy either); without one, read as usual.
  const mapped = run.fileFd !== undefined && run.plan.sparseSize > 0 ? run.source.mappedBytes?.(offset, length) : undefined;
  if (run.fileFd !== undefined && (run.plan.sparseSize === 0 || mapped !== undefined) && run.destination.canWriteFromFile!(conn)) {
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      window?.release(length);
    };
    try {
      await run.writeFileData(run.fileFd, mapped, offset, length, conn, release);
    } finally {
      release();
    }
    return;
  }
  const { source, pool } = run;
  let buffer: Buffer | undefined;
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    if (buffer !== undefined) pool.give(buffer);
    window?.release(length);
  };
  try {
    let view: Buffer;
    if (source.readTake !== undefined) {
      // The buffer is taken when the data arrives: usually the one the previous request
      // just gave back, still in the CPU cache.
      view = await source.readTake(length, offset, conn, () => {
        const b = pool.take();
        buffer = b;
        return length === b.length ? b : b.subarray(0, length);
      });
    } else {
      const b = pool.take();
      buffer = b;
      view = length === b.length ? b : b.subarray(0, length);
      const n = await source.read(view, offset, conn);
      if (n < length) throw new NbdError('EIO', `${source.name}: unexpected end of data at offset ${offset + n}`);
    }
    await run.writeData(view, offset, conn, run.releaseEarly ? release : undefined);
  } finally {
    release();
  }
}

/** A source of unknown length (a pipe): read in order until end of file. */
async function copyStream(source: Endpoint, destination: Endpoint, options: CopyOptions, plan: CopyPlan): Promise<number> {
  const run = new CopyRun(source, destination, options, plan);
  const unwatch = run.watchSignal();
  try {
    const bytes = await copyFromStream(run);
    if (run.error !== undefined) throw run.error;
    return bytes;
  } catch (err) {
    throw err instanceof NbdError ? err : wrapError(err, source.name);
  } finally {
    unwatch();
  }
}
