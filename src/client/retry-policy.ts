// How connections are retried: the options, the pause before each attempt, and opening a
// connection while its server is not there yet (not started, restarting, or hanging up during
// the handshake).
import { NbdError } from '../protocol/errors.js';

export interface RetryOptions {
  /**
   * Attempts, in a row, to open a connection that could not be opened or was lost, before
   * giving up (0: none; the first error is returned as without this option). The count starts
   * again once a command is answered on a reopened connection.
   */
  retries: number;
  /** Pause before the first attempt, doubled after each failed one up to 30 s (default 1000). */
  retryDelayMs?: number;
  /** Told before each attempt (for logs and progress reports). */
  onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  /** 1 for the first attempt after a failure. */
  attempt: number;
  /** The pause before this attempt. */
  delayMs: number;
  /** Why: the failure, or the previous attempt's. */
  error: NbdError;
  /** 'open': the connection was never opened; 'reconnect': it was lost. */
  phase: 'open' | 'reconnect';
}

const MAX_DELAY_MS = 30_000;

/** The pause before attempt `attempt` (from 1): `baseMs` doubled each time, at most 30 s. */
export function backoffDelay(baseMs: number, attempt: number): number {
  return Math.min(MAX_DELAY_MS, Math.max(0, baseMs) * 2 ** (attempt - 1));
}

/** Socket errors (the system's codes) that a server being started or restarted causes. */
const SERVER_NOT_THERE = new Set<string>([
  'ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'ECONNABORTED', 'EAGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
]);

/**
 * The open (or reopen) failed because the server is not (yet, or no longer) there, so trying
 * again may help: the socket refused or missing, or the connection dropped during the
 * handshake. Not: a bad address, an export the server does not have, TLS refused, a
 * certificate not trusted or a PSK rejected with a TLS alert, a protocol violation (ENOENT
 * from the server itself, not from the socket, is a missing export).
 *
 * A server that rejects a PSK by closing without an alert (nbdkit: GnuTLS hangs up) cannot be
 * told from one going away at that moment, so that case is retried.
 */
export function isServerAbsent(err: unknown): boolean {
  if (!(err instanceof NbdError)) return false;
  if (err.code === 'ECONNRESET' || err.code === 'ESHUTDOWN' || err.code === 'ENOTCONN') return true;
  const sys = (err.cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof sys === 'string' && SERVER_NOT_THERE.has(sys);
}

/**
 * Calls `open` until it succeeds, at most `policy.retries` more times after a first failure
 * that {@link isServerAbsent} says may pass, pausing as {@link backoffDelay} says. Any other
 * failure, or the last one, is thrown (the last one naming the attempts).
 */
export async function openWithRetries<T>(open: () => Promise<T>, policy: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      if (!isServerAbsent(err)) throw err;
      const error = err as NbdError;
      if (attempt >= policy.retries) {
        if (attempt === 0) throw error;
        throw new NbdError(error.code, `${error.message} (gave up after ${attempt} connection attempt${attempt === 1 ? '' : 's'})`,
          { cause: error });
      }
      const delayMs = backoffDelay(policy.retryDelayMs ?? 1000, attempt + 1);
      policy.onRetry?.({ attempt: attempt + 1, delayMs, error, phase: 'open' });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}
