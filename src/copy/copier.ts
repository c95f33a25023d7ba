// Copies one open endpoint to another: makes the plan, picks the strategy it names, tells
// the observers, flushes when asked. Opening and closing the endpoints is the caller's job.
import { NbdError } from '../protocol/errors.js';
import type { Endpoint } from './endpoint.js';
import type { CopyOptions } from './options.js';
import type { CopyObserver } from './observer.js';
import { planCopy, EXTENT_WINDOW, type CopyPlan } from './plan.js';
import { ClaimDealer, ConnectionPlanner } from './planner.js';
import { CopyRun, type CopyStats } from './copy-run.js';
import { wrapError } from './errors.js';
import { copyInParallel } from './strategies/parallel.js';
import { copyInOrder } from './strategies/in-order.js';
import { copyFromStream } from './strategies/from-stream.js';

export interface CopyResult extends CopyPlan {
  /** Bytes of the source covered (data and zeroes). */
  bytes: number;
  /** The block hash (lowercase hex), when one was asked for. */
  blockHash?: string;
  /** Of those: written as data, sent as zero requests, or needing nothing. */
  stats: CopyStats;
}

/**
 * Copies source to destination (both already open), telling `observers` (in this order) as
 * it goes. Does not close the endpoints.
 */
export async function copyEndpoints(
  source: Endpoint, destination: Endpoint, options: CopyOptions, observers: readonly CopyObserver[] = [],
): Promise<CopyResult> {
  const plan = await planCopy(source, destination, options);
  options.log?.(`copy plan: ${JSON.stringify(plan)}`);
  const run = new CopyRun(source, destination, options, plan, observers);
  await run.observers.start({ source, destination, plan, size: source.size });
  const unwatch = run.watchSignal();
  let bytes: number;
  try {
    bytes = plan.strategy === 'from-stream' ? await copyFromStream(run) : await copyExtents(run);
    if (run.error !== undefined) throw run.error;
  } catch (err) {
    // From a stream, errors of the read loop itself may be plain system errors.
    throw plan.strategy === 'from-stream' && !(err instanceof NbdError) ? wrapError(err, source.name) : err;
  } finally {
    unwatch();
  }
  if (options.flush) await destination.flush();
  await run.observers.end({ source, destination, bytes });
  return { ...plan, bytes, stats: { ...run.stats } };
}

/** A source of known size, walked through its extents by one planner per connection. */
async function copyExtents(run: CopyRun): Promise<number> {
  const { source, options, plan } = run;
  const dealer = new ClaimDealer(source.size!, plan.claimSize);
  const limits = {
    requestSize: plan.requestSize,
    sliceSize: plan.sliceSize,
    blockSize: plan.blockSize,
    extentWindow: Math.min(EXTENT_WINDOW, plan.claimSize),
    useExtents: !options.noExtents && source.canExtents,
    ranges: options.ranges,
    sourceSize: source.size!,
  };
  if (plan.strategy === 'in-order') {
    // One planner walks the whole disk in order; its reads are spread over the connections.
    run.planners.push(new ConnectionPlanner(source, 0, dealer, limits));
    await copyInOrder(run, run.planners[0]!, plan.connections, plan.connections * plan.lanesPerConnection, plan.requestSize);
  } else {
    for (let c = 0; c < plan.connections; c++) run.planners.push(new ConnectionPlanner(source, c, dealer, limits));
    await copyInParallel(run);
  }
  return run.done;
}
