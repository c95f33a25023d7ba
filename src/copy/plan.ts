// What to copy and how: checks sizes, opens the extra connections both sides allow, and
// derives request sizes, lanes, the unit zero runs are cut at and the strategy. Writes nothing.
import { NbdError } from '../protocol/errors.js';
import type { Endpoint } from './endpoint.js';
import type { CopyOptions } from './options.js';
import { MAX_REQUEST_SIZE } from './options.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * The disk is cut into slices of this size at fixed offsets, as libnbd's nbdcopy cuts its
 * work, and no request crosses a slice: a server (or whoever logs its requests) sees the
 * same requests from both tools, and one zero request never covers more than a slice.
 */
export const SLICE_SIZE = 128 * MiB;
/** Bytes of extents asked for at once (block status lengths are 32-bit without extended headers). */
export const EXTENT_WINDOW = 4 * GiB - 64 * MiB;
/**
 * Most bytes one connection claims at a time. A claim only costs an extents call, so
 * mostly-empty disks want it big; four per connection keep the work balanced. At most one
 * extent window, so a big empty claim is one block status round trip, not two.
 */
const MAX_CLAIM = EXTENT_WINDOW;
/** Requests in flight when neither side is an NBD server (libuv's default thread pool size). */
const LOCAL_IN_FLIGHT = 4;

/**
 * How the work is done. `parallel`: lanes per connection, any order. `in-order`: reads run
 * ahead, writes go out in offset order (a random-access source into a stream). `from-stream`:
 * a source of unknown length read in order, writes behind it.
 */
export type Strategy = 'parallel' | 'in-order' | 'from-stream';

export interface CopyPlan {
  strategy: Strategy;
  connections: number;
  lanesPerConnection: number;
  requestSize: number;
  /**
   * The largest minimum block size of the two sides: every request starts and ends on a
   * multiple of it (except at the end of the source), so no destination block is written
   * twice and a zero request only ever covers whole blocks.
   */
  blockSize: number;
  /** All-zero runs of this many bytes inside data become zero requests; 0 = no detection. */
  sparseSize: number;
  /** Bytes a connection claims at a time (whole slices' worth of extents are asked for ahead). */
  claimSize: number;
  sliceSize: number;
  sequential: boolean;
}

function alignDown(n: number, to: number): number {
  return n - (n % to);
}

/** Connections usable on `e` now: what it opened, or any number when every index works. */
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
  const strategy = pickStrategy(source, destination, options);
  const sequential = options.synchronous || source.sequential || destination.sequential || source.size === undefined;
  let connections = 1;
  if (strategy === 'in-order') {
    // As libnbd's nbdcopy: a stream on either side means one connection. Its reads still run
    // ahead on that connection, and more connections cost the server CPU without speeding
    // the stream up.
    connections = Math.max(1, Math.min(options.connections, source.maxConnections, destination.maxConnections));
    if (connections > 1) {
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
  const blockSize = Math.max(source.minimumBlockSize, destination.minimumBlockSize, 1);
  const maxBlock = Math.min(source.maximumBlockSize, destination.maximumBlockSize, MAX_REQUEST_SIZE);
  const requestSize = Math.max(blockSize, alignDown(Math.min(options.requestSize, maxBlock), blockSize));
  let sparseSize = 0;
  const worthDetecting = !destination.sequential && (destination.canZero || destination.isZero || options.destinationIsZero);
  if (options.sparseSize > 0 && worthDetecting) {
    // Zero runs split writes at multiples of sparseSize: keep those on the block boundaries.
    sparseSize = Math.min(requestSize, Math.ceil(options.sparseSize / blockSize) * blockSize);
  }
  // A stream on one side still lets the other side run requests side by side: reads ahead
  // of the writer, or writes behind the reader into a random-access destination.
  const writesBehind = strategy === 'from-stream' && !options.synchronous && !destination.sequential;
  const parallel = !sequential || strategy === 'in-order' || writesBehind;
  let lanesPerConnection = parallel ? Math.max(1, Math.min(options.requests, Math.floor(options.queueSize / requestSize))) : 1;
  if (parallel && source.local && destination.local) {
    // Local to local (files, pipes): every request is a thread-pool job (4 threads); more in
    // flight only queues, and concurrent writers to one file contend in the kernel.
    connections = 1;
    lanesPerConnection = Math.min(lanesPerConnection, LOCAL_IN_FLIGHT);
  }
  const size = source.size ?? 0;
  const claimSize = sequential ? Math.max(size, 1) : claimFor(size, connections, requestSize);
  return {
    strategy, connections, lanesPerConnection, requestSize, blockSize, sparseSize, claimSize, sliceSize: SLICE_SIZE, sequential,
  };
}

/**
 * About four claims per connection, and claims that tile the slices (whole slices, or a power
 * of two that divides one), so only slice boundaries cut a long zero run on a big disk.
 */
function claimFor(size: number, connections: number, requestSize: number): number {
  const wanted = Math.min(MAX_CLAIM, Math.max(16 * MiB, Math.ceil(size / (connections * 4))));
  const claim = wanted >= SLICE_SIZE ? alignDown(wanted, SLICE_SIZE) : 2 ** Math.floor(Math.log2(wanted));
  return Math.max(requestSize, claim);
}

function pickStrategy(source: Endpoint, destination: Endpoint, options: CopyOptions): Strategy {
  if (source.size === undefined) return 'from-stream';
  // A random-access source feeding a stream: reads run ahead, writes go out in order.
  if (destination.sequential && !source.sequential && !options.synchronous) return 'in-order';
  return 'parallel';
}
