// Summary statistics of repeated runs. Pure functions: no clocks, no I/O.

/** Median of a list of numbers; the mean of the two middle values for even lengths. */
export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function minimum(values) {
  return values.length === 0 ? null : Math.min(...values);
}

export function maximum(values) {
  return values.length === 0 ? null : Math.max(...values);
}

/**
 * Summarise the successful runs of one tool in one scenario.
 * A run is { wallMs, userMs, sysMs, maxRssKb, serverCpuMs?, ok }; CPU and RSS may be null when
 * /usr/bin/time was not available, and then the summary says null rather than 0.
 */
export function summarizeRuns(runs, bytes) {
  const good = runs.filter((run) => run.ok);
  const walls = good.map((run) => run.wallMs);
  const cpus = good.filter((run) => run.userMs != null && run.sysMs != null).map((run) => run.userMs + run.sysMs);
  const rss = good.filter((run) => run.maxRssKb != null).map((run) => run.maxRssKb);
  const serverCpus = good.filter((run) => run.serverCpuMs != null).map((run) => run.serverCpuMs);
  const medianWallMs = median(walls);
  return {
    runs: good.length,
    failed: runs.length - good.length,
    medianWallMs,
    minWallMs: minimum(walls),
    maxWallMs: maximum(walls),
    medianCpuMs: median(cpus),
    maxRssKb: maximum(rss),
    // CPU the server(s) spent during the run: the same server serves every tool.
    medianServerCpuMs: median(serverCpus),
    // Throughput of the virtual size: what a user perceives as "copied N GiB in T s".
    bytesPerSecond: bytes > 0 && medianWallMs ? (bytes / medianWallMs) * 1000 : null,
  };
}

/** ours / theirs; below 1 means we are faster (or cheaper). Null when either side is missing. */
export function ratio(ours, theirs) {
  if (ours == null || theirs == null || theirs === 0) return null;
  return ours / theirs;
}

/** Percentage change from before to after: +10 means 10% slower when the values are times. */
export function percentChange(before, after) {
  if (before == null || after == null || before === 0) return null;
  return ((after - before) / before) * 100;
}
