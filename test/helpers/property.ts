// How every randomised test runs its generated cases under fast-check: how many (FUZZ_RUNS),
// from which seed (FUZZ_SEED: fixed in CI, new on each local run) and which one to replay
// (FUZZ_PATH); cleanup after each case; a time budget for shrinking a failure down, since each
// case here may start servers; and a failure message that ends with the command replaying it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { REPO } from './build.js';

/** The seed of CI's runs, so a push fails only for what it changed. */
export const CI_SEED = 20261202;

export interface Replay {
  seed: number | undefined;
  path: string | undefined;
  runs: number | undefined;
}

/** FUZZ_SEED, FUZZ_PATH and FUZZ_RUNS as set, with CI's fixed seed when none is. */
export function replayFromEnv(): Replay {
  const env = process.env;
  const seed = env['FUZZ_SEED'] !== undefined ? Number(env['FUZZ_SEED']) : env['CI'] === 'true' ? CI_SEED : undefined;
  const runs = env['FUZZ_RUNS'] !== undefined ? Number(env['FUZZ_RUNS']) : undefined;
  return { seed, path: env['FUZZ_PATH'] || undefined, runs };
}

/** True with probability `p`; shrinks to false. */
export function chance(p: number): fc.Arbitrary<boolean> {
  return fc.integer({ min: 0, max: 99 }).map((n) => n >= 100 - Math.round(p * 100));
}

/** `arb`'s value with probability `p`, else undefined (where a failure shrinks to). */
export function maybe<T>(p: number, arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  const weight = Math.round(p * 100);
  return fc.oneof({ withCrossShrink: true }, { weight: 100 - weight, arbitrary: fc.constant(undefined) }, { weight, arbitrary: arb });
}

export interface PropertyOptions {
  /** The test file's import.meta.url, for the replay command. */
  file: string;
  /** The test's name as given to it.prop (fast-check's plugin appends the seed). */
  name: string;
  /** Cases per run (FUZZ_RUNS overrides). */
  runs: number;
  /** The longest one case may take, servers and tools included. */
  caseMs: number;
  /** Runs after every case, passed or failed: stops what the case started. */
  afterEach?: () => void | Promise<void>;
  /** How long a failure may be shrunk before the smallest case found so far is reported. */
  shrinkMs?: number;
  /**
   * Let fast-check favour small and extreme values (its default). Off unless asked: the few
   * cases of a test that starts servers should follow the weights its arbitraries give (a
   * fair pick of tools, styles and sizes), not crowd at the first of each list.
   */
  biased?: boolean;
}

/**
 * fast-check's parameters for one property, and the vitest timeout that covers all its cases
 * and the shrinking of a failure.
 */
export function property<T>(o: PropertyOptions): { parameters: fc.Parameters<T>; timeout: number } {
  const replay = replayFromEnv();
  const runs = replay.runs ?? o.runs;
  const seed = replay.seed ?? ((Date.now() ^ (Math.random() * 0x1_0000_0000)) | 0);
  // CI reports a failure within a minute of shrinking: its seed is fixed, so a longer shrink
  // can be replayed locally from the printed seed.
  const shrinkMs = o.shrinkMs ?? (process.env['CI'] === 'true' ? 60_000 : 10 * 60_000);
  const plugins: Array<fc.Plugin<T>> = [shrinkBudget<T>(shrinkMs), replayMessage<T>(o.file, o.name)];
  if (o.afterEach) plugins.unshift(fc.afterEach(o.afterEach));
  if (!o.biased) plugins.unshift(fc.unbiased());
  return {
    parameters: {
      numRuns: runs,
      seed,
      // Replaying a path runs that one case as it failed, without shrinking it again.
      ...(replay.path !== undefined ? { path: replay.path, endOnFailure: true } : {}),
      plugins,
    },
    timeout: runs * o.caseMs + shrinkMs + 60_000,
  };
}

/**
 * Ends shrinking `ms` after the first failure: the cases here start servers and tools, so a
 * long shrink could outlast any test timeout; what was found by then is reported.
 */
function shrinkBudget<T>(ms: number): fc.Plugin<T> {
  return () => {
    let failedAt: number | undefined;
    return {
      decorateRun: (run) => ((value: T) => {
        if (failedAt !== undefined && performance.now() - failedAt > ms) return Promise.resolve(new fc.PreconditionFailure(true));
        return Promise.resolve(run(value)).then((result) => {
          if (result !== null && !fc.PreconditionFailure.isFailure(result)) failedAt ??= performance.now();
          return result;
        });
      }) as typeof run,
    };
  };
}

/** fast-check's report of a failure (the shrunk case, seed and path), then the command that replays it. */
function replayMessage<T>(fileUrl: string, name: string): fc.Plugin<T> {
  const file = path.relative(REPO, fileURLToPath(fileUrl));
  return () => ({
    onAllRunsComplete: (details) => {
      if (!details.failed) return;
      const replay = details.counterexamplePath === null ? ''
        : `\nReplay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} npx vitest run ${file} -t '${name.replaceAll("'", "'\\''")}'`;
      throw new Error(`${fc.defaultReportMessage(details) ?? 'failed'}${replay}`, { cause: details.errorInstance });
    },
  });
}
