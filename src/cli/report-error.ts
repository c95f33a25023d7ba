// The one way our CLIs end: success, or exactly one line `tool: what: why` on stderr and
// exit status 1 (after SIGINT/SIGTERM: the line, then death by that signal). The stack only
// appears with -v/--verbose or NBD_DEBUG=1.
import { endBySignal, Interrupted } from './signals.js';

/** True when the user asked for debug output (then errors carry their stack). */
export function wantsDebug(argv: readonly string[]): boolean {
  if (process.env['NBD_DEBUG'] === '1') return true;
  for (const a of argv) {
    if (a === '--') break;
    if (a === '-v' || a === '--verbose' || /^-[a-zA-Z]*v[a-zA-Z]*$/.test(a) && !a.startsWith('--')) return true;
  }
  return false;
}

/**
 * The single line printed for `err` (no trailing newline, never multi-line). Messages can
 * carry a server's own text (option and reply errors), so control characters other than the
 * line breaks folded here are shown as \xHH: a server must not move the cursor, clear the
 * screen or add lines on the user's terminal.
 */
export function errorLine(tool: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const folded = message.replace(/\s*\n\s*/g, ' ').trim();
  return `${tool}: ${folded.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}`;
}

/**
 * Runs a CLI body and exits the process: with its returned status (default 0), or 1 after
 * printing the error line. Exiting explicitly means a stray handle can never hang the tool;
 * the body must have closed its endpoints and reaped its subprocesses before returning.
 */
export async function runCli(tool: string, argv: readonly string[], body: () => Promise<number | void>): Promise<never> {
  let status = 0;
  try {
    status = (await body()) ?? 0;
  } catch (err) {
    if (err instanceof Interrupted) return endBySignal(tool, err.signal);
    process.stderr.write(`${errorLine(tool, err)}\n`);
    if (wantsDebug(argv) && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
    status = 1;
  }
  process.exit(status);
}
