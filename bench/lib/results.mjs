// Derived figures of a scenario's rows: the ratios that answer "where do we stand".

import { ratio } from './stats.mjs';

/**
 * GNU time reports CPU in 10 ms steps: below this, a CPU ratio is mostly rounding, so it is
 * left out rather than shown as 13x.
 */
export const MIN_CPU_MS_FOR_RATIO = 30;

function cpuRatio(ours, theirs) {
  if (ours == null || theirs == null || ours < MIN_CPU_MS_FOR_RATIO || theirs < MIN_CPU_MS_FOR_RATIO) return null;
  return ratio(ours, theirs);
}

/** ours / other, on median wall time and on median CPU time, for each other tool measured. */
export function scenarioRatios(rows) {
  const ours = rows.find((row) => row.tool === 'ours' && !row.skipped);
  const ratios = {};
  for (const row of rows) {
    if (row.tool === 'ours' || row.skipped) continue;
    ratios[row.tool] = {
      wall: ratio(ours?.summary?.medianWallMs, row.summary?.medianWallMs),
      cpu: cpuRatio(ours?.summary?.medianCpuMs, row.summary?.medianCpuMs),
    };
  }
  return ratios;
}

/**
 * A start-up-bound row: our median minus Node's own start-up (`node -e 0`, measured in the
 * same rounds) against libnbd's whole median. The target is a ratio at or below 1.
 */
export function startupFigures(rows, nodeFloor) {
  const ours = rows.find((row) => row.tool === 'ours' && !row.skipped)?.summary?.medianWallMs;
  const libnbd = rows.find((row) => row.tool === 'libnbd' && !row.skipped)?.summary?.medianWallMs;
  const floor = nodeFloor?.medianWallMs;
  if (ours == null || floor == null) return null;
  const oursMinusNodeMs = ours - floor;
  return { nodeMs: floor, oursMinusNodeMs, libnbdMs: libnbd ?? null, ratio: libnbd == null ? null : ratio(oursMinusNodeMs, libnbd) };
}
