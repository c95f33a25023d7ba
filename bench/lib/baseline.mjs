// Compare a bench result against an earlier one (both the JSON that --json writes).
// Times are compared on the median wall time of each scenario and tool. Only our own
// rows can fail the gate: the other tools are the yardstick, and a change in them says
// the machine changed, which the printed ratio columns make visible.

import { percentChange, ratio } from './stats.mjs';

/** Changes within this band are called "same" when no threshold was given. */
export const DEFAULT_NOISE_PCT = 5;

export const EXIT_REGRESSION = 2;

function indexRows(result) {
  const map = new Map();
  for (const scenario of result.scenarios ?? []) {
    for (const row of scenario.rows ?? []) {
      map.set(`${scenario.name}\u0000${row.tool}`, { scenario, row });
    }
  }
  return map;
}

function medianOf(row) {
  return row && !row.skipped ? (row.summary?.medianWallMs ?? null) : null;
}

function libnbdMedian(scenario) {
  return medianOf(scenario.rows?.find((row) => row.tool === 'libnbd'));
}

/**
 * Returns { entries, regressions, exitCode }.
 * entry: { scenario, tool, beforeMs, afterMs, changePct, verdict, ratioBefore, ratioAfter }
 * verdict: 'slower' | 'faster' | 'same' | 'new' | 'gone', or 'n/a' when neither side measured it.
 * ratioBefore/After are ours / libnbd in the same run (ours rows only): machine-independent.
 */
export function compareResults(baseline, current, { thresholdPct = null } = {}) {
  const band = thresholdPct ?? DEFAULT_NOISE_PCT;
  const before = indexRows(baseline);
  const after = indexRows(current);
  const keys = [...new Set([...before.keys(), ...after.keys()])];
  const entries = keys.map((key) => {
    const [scenario, tool] = key.split('\u0000');
    const old = before.get(key);
    const now = after.get(key);
    const beforeMs = medianOf(old?.row);
    const afterMs = medianOf(now?.row);
    const changePct = percentChange(beforeMs, afterMs);
    let verdict;
    if (beforeMs == null && afterMs == null) verdict = 'n/a';
    else if (beforeMs == null) verdict = 'new';
    else if (afterMs == null) verdict = 'gone';
    else if (changePct > band) verdict = 'slower';
    else if (changePct < -band) verdict = 'faster';
    else verdict = 'same';
    const entry = { scenario, tool, beforeMs, afterMs, changePct, verdict };
    if (tool === 'ours') {
      entry.ratioBefore = old ? ratio(beforeMs, libnbdMedian(old.scenario)) : null;
      entry.ratioAfter = now ? ratio(afterMs, libnbdMedian(now.scenario)) : null;
    }
    return entry;
  });
  // A row of ours that measured before and cannot run now is a regression too.
  const regressions = entries.filter((entry) => entry.tool === 'ours' && (entry.verdict === 'slower' || entry.verdict === 'gone'));
  const exitCode = thresholdPct != null && regressions.length > 0 ? EXIT_REGRESSION : 0;
  return { entries, regressions, exitCode, bandPct: band };
}

function seconds(ms) {
  return ms == null ? '-' : `${(ms / 1000).toFixed(3)} s`;
}

function signedPct(pct) {
  return pct == null ? '-' : `${pct > 0 ? '+' : ''}${pct.toFixed(1)}%`;
}

function ratioText(value) {
  return value == null ? '-' : `${value.toFixed(2)}x`;
}

/** Plain-text report of a comparison, one line per scenario and tool. */
export function formatComparison(comparison) {
  const header = ['scenario', 'tool', 'before', 'after', 'change', 'verdict', 'ours/libnbd before -> after'];
  const lines = comparison.entries.map((entry) => [
    entry.scenario,
    entry.tool,
    seconds(entry.beforeMs),
    seconds(entry.afterMs),
    signedPct(entry.changePct),
    entry.verdict,
    entry.tool === 'ours' ? `${ratioText(entry.ratioBefore)} -> ${ratioText(entry.ratioAfter)}` : '',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)));
  const render = (cells) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  const out = [render(header), ...lines.map(render)];
  const count = comparison.regressions.length;
  out.push(
    count === 0
      ? `no regression of ours beyond ${comparison.bandPct}%`
      : `${count} regression${count === 1 ? '' : 's'} of ours beyond ${comparison.bandPct}%: ` +
          comparison.regressions.map((entry) => entry.scenario).join(', '),
  );
  return out.join('\n');
}
