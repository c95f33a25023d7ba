// How close() treats commands still in flight: wait for them (libnbd's nbd_shutdown), give
// up after a time, or abandon them at once (LIBNBD_SHUTDOWN_ABANDON_PENDING).
import type { PendingRequests } from './pending-requests.js';

/**
 * Options of close() / disconnect().
 *
 * @example
 * ```ts
 * // A server that stopped answering: give in-flight commands 5 s, then fail them and close.
 * await client.close({ timeoutMs: 5000 });
 * // Or at once: every command in flight rejects with ESHUTDOWN.
 * await client.close({ abandonPending: true });
 * ```
 */
export interface CloseOptions {
  /**
   * Do not wait for commands in flight: they (and those queued behind them) reject with
   * ESHUTDOWN and the connection closes now, without NBD_CMD_DISC (the server may still be
   * working on them).
   */
  abandonPending?: boolean;
  /**
   * Wait at most this many ms for commands in flight, then abandon them as `abandonPending`
   * does (default: no limit).
   */
  timeoutMs?: number;
}

/**
 * Resolves to true once nothing is in flight, or to false when the wait ended first: the
 * timeout passed, or `abandon` resolved (a later close({ abandonPending: true })).
 */
export async function waitForInFlight(pending: PendingRequests, options: CloseOptions, abandon: Promise<void>): Promise<boolean> {
  if (pending.onWire === 0) return true;
  if (options.abandonPending) return false;
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<boolean>((resolve) => {
    if (options.timeoutMs !== undefined) timer = setTimeout(() => resolve(false), Math.max(0, options.timeoutMs));
    void abandon.then(() => resolve(false));
  });
  try {
    return await Promise.race([pending.drained().then(() => true), gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}
