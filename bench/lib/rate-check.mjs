// The figures of a rate-limited copy from its --progress-json events, stamped on arrival: the
// average over the whole copy and the rate of each interval between progress events (about a
// second each), checked against issue 17's bounds: average within 5% of the cap, no second
// more than 25% above it.

export const AVERAGE_TOLERANCE = 0.05;
export const SECOND_TOLERANCE = 0.25;

/**
 * `samples`: [{ t: ms, bytes }] of the progress events in arrival order; `done`: the done
 * event ({ bytes, seconds }); `cap`: --rate in bytes per second.
 */
export function rateFigures(samples, done, cap) {
  const average = done.seconds > 0 ? done.bytes / done.seconds : 0;
  const perSecond = [];
  for (let i = 1; i < samples.length; i++) {
    const ms = samples[i].t - samples[i - 1].t;
    if (ms > 0) perSecond.push(((samples[i].bytes - samples[i - 1].bytes) * 1000) / ms);
  }
  const worst = perSecond.length > 0 ? Math.max(...perSecond) : 0;
  const averageOff = average / cap - 1;
  const worstOver = worst / cap - 1;
  return {
    average,
    averageOff,
    perSecond,
    worst,
    worstOver,
    ok: Math.abs(averageOff) <= AVERAGE_TOLERANCE && worstOver <= SECOND_TOLERANCE && done.seconds >= 10,
  };
}
