// The operational options of one copy (--retries/--retry-delay, --rate, --progress-json), as
// what the copy is given: request options and observers. The copier never learns their names.
import type { CopyRequest } from '../copy/api.js';
import type { CopyResult } from '../copy/copier.js';
import type { CopyObserver } from '../copy/observer.js';
import { rateLimit, requestSizeForRate } from '../copy/observers/rate-limit.js';
import type { NbdcopyArgs } from './nbdcopy-args.js';
import { JsonProgress } from './nbdcopy-progress-json.js';
import { errorLine } from './report-error.js';
import { Interrupted } from './signals.js';

export interface CopyOps {
  observers: CopyObserver[];
  request: Pick<CopyRequest, 'retries' | 'retryDelayMs' | 'onRetry' | 'requestSize'>;
  /** Reconnection attempts so far. */
  readonly retries: number;
  succeeded(result: CopyResult, blkhash?: string): void;
  failed(err: unknown): void;
}

const SIGNAL_STATUS = { SIGINT: 130, SIGTERM: 143 } as const;

/** `tags`: fields every JSON event carries (in a batch: its line and sides). */
/** `toStderr`, when given, takes the JSON lines meant for stderr (fd 2): a progress bar places them. */
export function copyOps(
  args: NbdcopyArgs, log?: (line: string) => void, tags?: Record<string, unknown>, toStderr?: (text: string) => void,
): CopyOps {
  const observers: CopyObserver[] = [];
  let retries = 0;
  const request: CopyOps['request'] = {};
  if (args.retries > 0) {
    request.retries = args.retries;
    request.retryDelayMs = args.retryDelayMs;
    request.onRetry = (e) => {
      retries++;
      log?.(`${e.endpoint}: ${e.error.message}; ${e.phase === 'open' ? 'connecting again' : 'reconnecting'} in ${e.delayMs} ms (attempt ${e.attempt} of ${args.retries})`);
    };
  }
  if (args.rate !== undefined) {
    // Smaller requests, unless the user chose a size, so that no second passes 125% of the rate.
    if (!args.requestSizeExplicit) request.requestSize = Math.min(args.requestSize, requestSizeForRate(args.rate));
    observers.push(rateLimit(args.rate));
  }
  const json = args.progressJson === false ? undefined
    : new JsonProgress(args.progressJson.fd, tags, undefined, args.progressJson.fd === 2 ? toStderr : undefined);
  if (json !== undefined) observers.push(json.observer());
  return {
    observers,
    request,
    get retries() {
      return retries;
    },
    succeeded(result, blkhash) {
      json?.finish({
        bytes: result.bytes, written: result.stats.written, zeroed: result.stats.zeroed, skipped: result.stats.skipped,
        connections: result.connections, retries, rateLimit: args.rate ?? null, blkhash,
      });
    },
    failed(err) {
      const status = err instanceof Interrupted ? SIGNAL_STATUS[err.signal] : 1;
      json?.error(errorLine('nbdcopy', err).replace(/^nbdcopy: /, ''), retries, status);
    },
  };
}
