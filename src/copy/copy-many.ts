// Many copies at once, a bounded number at a time (nbdcopy --batch as a library): each job is
// one copy with its own options; a failure is reported with the others going on, unless
// failFast stops them. Never rejects for a job's failure: every job gets an outcome.
import pLimit from 'p-limit';
import { NbdError } from '../protocol/errors.js';
import { copy, type CopyEndpoint, type CopyRequest } from './api.js';

export interface CopyJob {
  /** As copy()'s: a path, '-', an NBD URI, the words of a `[ CMD ARGS ]` server, a spec ... */
  source: CopyEndpoint;
  destination: CopyEndpoint;
  /**
   * copy()'s options for this job, the URI allow-lists included (their defaults are copy()'s:
   * no local files), so each job says what its URIs may ask for.
   */
  options?: CopyRequest;
}

export type CopyOutcome<R> =
  | { status: 'fulfilled'; index: number; result: R; seconds: number }
  | { status: 'rejected'; index: number; error: unknown; seconds: number }
  /** failFast: the job had not started when another one failed. */
  | { status: 'skipped'; index: number };

export interface CopyManyOptions<J, R> {
  /** Copies running at once (default 1). */
  concurrency?: number;
  /** After the first failure, stop the running copies and start no more. */
  failFast?: boolean;
  /** Aborting stops every running copy and starts no more. */
  signal?: AbortSignal;
  /** Called as each job ends (in the order they end). */
  onOutcome?: (outcome: CopyOutcome<R>, job: J) => void;
  /**
   * Runs one job (default: copy with the job's options). `signal` is aborted when the
   * batch stops (failFast, or the caller's signal): the copy should then end soon.
   */
  run?: (job: J, signal: AbortSignal, index: number) => Promise<R>;
}

const defaultRun = (job: CopyJob, signal: AbortSignal) =>
  copy(job.source, job.destination, { ...job.options, signal });

/** Runs `jobs`; resolves with one outcome per job, in the jobs' order. */
export function copyMany(jobs: readonly CopyJob[], options?: CopyManyOptions<CopyJob, Awaited<ReturnType<typeof copy>>>):
  Promise<Array<CopyOutcome<Awaited<ReturnType<typeof copy>>>>>;
export function copyMany<J, R>(jobs: readonly J[], options: CopyManyOptions<J, R> & { run: (job: J, signal: AbortSignal, index: number) => Promise<R> }):
  Promise<Array<CopyOutcome<R>>>;
export async function copyMany<J, R>(jobs: readonly J[], options: CopyManyOptions<J, R> = {}): Promise<Array<CopyOutcome<R>>> {
  const concurrency = options.concurrency ?? 1;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new NbdError('EINVAL', `copyMany: concurrency must be a whole number of at least 1, got ${concurrency}`);
  }
  const run = options.run ?? (defaultRun as unknown as (job: J, signal: AbortSignal, index: number) => Promise<R>);
  const stop = new AbortController();
  const outer = options.signal;
  const onOuterAbort = () => stop.abort(outer!.reason);
  if (outer?.aborted) onOuterAbort();
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const limit = pLimit(concurrency);
  const settle = (outcome: CopyOutcome<R>): CopyOutcome<R> => {
    options.onOutcome?.(outcome, jobs[outcome.index]!);
    return outcome;
  };
  try {
    return await Promise.all(jobs.map((job, index) => limit(async (): Promise<CopyOutcome<R>> => {
      if (stop.signal.aborted) return settle({ status: 'skipped', index });
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      try {
        const result = await run(job, stop.signal, index);
        return settle({ status: 'fulfilled', index, result, seconds: seconds() });
      } catch (error) {
        if (options.failFast && !stop.signal.aborted) stop.abort(error);
        return settle({ status: 'rejected', index, error, seconds: seconds() });
      }
    })));
  } finally {
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
