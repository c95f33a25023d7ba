// Derived figures of a scenario's rows: the ratios that answer "where do we stand".

import { ratio } from './stats.mjs';

/** ours / other, on median wall time and on median CPU time, for each other tool measured. */
export function scenarioRatios(rows) {
  const ours = rows.find((row) => row.tool === 'ours' && !row.skipped);
  const ratios = {};
  for (const row of rows) {
    if (row.tool === 'ours' || row.skipped) continue;
    ratios[row.tool] = {
      wall: ratio(ours?.summary?.medianWallMs, row.summary?.medianWallMs),
      cpu: ratio(ours?.summary?.medianCpuMs, row.summary?.medianCpuMs),
    };
  }
  return ratios;
}
