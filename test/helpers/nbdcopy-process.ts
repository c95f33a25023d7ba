// Our nbdcopy as a child process for the operational tests: the whole output and exit status,
// a promise that resolves once -v says the copy started, and the one-line-and-exit-1 check.
import { execFile } from 'node:child_process';
import { expect } from 'vitest';
import { OUR_NBDCOPY } from './build.js';

export interface Run { status: number | null; stdout: string; stderr: string; ms: number }

/**
 * Runs our nbdcopy. `copying` resolves once -v says the copy started (its plan line);
 * `stderrShows(pattern)` once stderr matches `pattern`. Both resolve at the latest when it exits.
 */
export function nbdcopy(args: string[], input?: string): Promise<Run> & { copying: Promise<void>; stderrShows(pattern: RegExp): Promise<void> } {
  const started = Date.now();
  let err = '';
  let ended = false;
  const waiting: Array<{ pattern: RegExp; resolve: () => void }> = [];
  const check = (): void => {
    for (let i = waiting.length - 1; i >= 0; i--) {
      const w = waiting[i]!;
      if (ended || w.pattern.test(err)) {
        waiting.splice(i, 1);
        w.resolve();
      }
    }
  };
  const stderrShows = (pattern: RegExp): Promise<void> => new Promise<void>((resolve) => {
    waiting.push({ pattern, resolve });
    check();
  });
  const run = new Promise<Run>((resolve) => {
    const child = execFile(OUR_NBDCOPY, args, { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      ended = true;
      check();
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr, ms: Date.now() - started });
    });
    child.stderr!.on('data', (d: string) => {
      err += d;
      check();
    });
    if (input !== undefined) child.stdin!.end(input);
  });
  return Object.assign(run, { copying: stderrShows(/copy plan/), stderrShows });
}

/** The lines of stderr that report a failure (-v adds lines of its own, retries among them). */
export const errorLines = (r: Run): string[] =>
  r.stderr.split('\n').filter((l) => /gave up|error|failed|refused/i.test(l) && !/connecting (again )?in/.test(l));

/** Exit 1 and exactly one line on stderr, matching `pattern`. */
export function expectOneLine(r: Run, pattern: RegExp): void {
  expect(r.status).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}
