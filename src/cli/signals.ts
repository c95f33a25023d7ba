// How our CLIs meet SIGINT and SIGTERM, as C tools do: a signal the caller left ignored stays
// ignored (a background job `cmd &` in a script, a Python subprocess with SIG_IGN), and
// otherwise, once clean-up is done, the process ends BY the signal so the shell sees 130/143.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { stopAllChildren } from '../client/children.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';
const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM'];

/** Variable the sh launchers (bin/nbdcopy, bin/nbdinfo) set to the SigIgn mask they inherited. */
const MASK_VARIABLE = 'NBD_TOOLKIT_SIGIGN';

/**
 * The hex mask of signals ignored when we were started. Node resets every disposition to the
 * default while it starts, so our own /proc/self/status no longer shows it: the launcher reads
 * it before exec'ing Node. Without a launcher (`node bin/nbdcopy`) what Node left is all we see.
 */
function inheritedMask(): bigint {
  const fromLauncher = process.env[MASK_VARIABLE];
  delete process.env[MASK_VARIABLE];
  let text = fromLauncher;
  if (text === undefined) {
    try {
      text = /^SigIgn:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    } catch {
      // No /proc: nothing is known to be ignored.
    }
  }
  if (text === undefined || !/^[0-9a-fA-F]{1,16}$/.test(text)) return 0n;
  return BigInt(`0x${text}`);
}

function ignoredIn(mask: bigint, signal: StopSignal): boolean {
  return ((mask >> BigInt(constants.signals[signal] - 1)) & 1n) === 1n;
}

/** A stop requested by a signal; the CLI ends by that signal once clean-up is done. */
export class Interrupted extends Error {
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
    this.name = 'Interrupted';
  }
}

/**
 * Calls `onStop` for SIGINT and SIGTERM, except for a signal that was ignored when we started:
 * that one gets a handler that does nothing, which keeps it ignored (Node made it deadly).
 * Returns the function that removes the handlers.
 */
export function onStopSignals(onStop: (signal: StopSignal) => void): () => void {
  const mask = inheritedMask();
  const installed: Array<[StopSignal, () => void]> = [];
  for (const signal of STOP_SIGNALS) {
    const handler = ignoredIn(mask, signal) ? () => undefined : () => onStop(signal);
    process.on(signal, handler);
    installed.push([signal, handler]);
  }
  return () => {
    for (const [signal, handler] of installed) process.off(signal, handler);
  };
}

/**
 * Ends the process by `signal`: with no listener left Node restores the default action, and
 * the signal we send ourselves then ends us as it would have a C tool. Call after clean-up.
 */
export function dieBy(signal: StopSignal): never {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  // Delivery is immediate for an unblocked default action; this is only a safety net.
  process.exit(128 + constants.signals[signal]);
}

let ending: Promise<never> | undefined;

/**
 * The end after a stop signal, once whichever path gets here first: one line on stderr,
 * subprocess servers stopped and reaped (SIGKILL after `graceMs`), then death by the signal.
 */
export function endBySignal(tool: string, signal: StopSignal, graceMs = 1000): Promise<never> {
  ending ??= (async () => {
    process.stderr.write(`${tool}: interrupted by ${signal}\n`);
    await stopAllChildren(graceMs);
    return dieBy(signal);
  })();
  return ending;
}
