// Debug log to stderr, on when NBD_DEBUG=1 or LIBNBD_DEBUG=1; silent (and nearly free) otherwise.

export const debugEnabled: boolean =
  process.env.NBD_DEBUG === '1' || process.env.LIBNBD_DEBUG === '1';

/** Callers pass a closure so that messages are only built when the log is on. */
export function debug(message: () => string): void {
  if (debugEnabled) process.stderr.write(`nbd: debug: ${message()}\n`);
}
