// The state a terminal bar draws, kept by the copy's calls, with the rate measured on a timer
// twice a second: a copy reports after every request, far too often to measure each time.
import { RateMeter, type ProgressState } from './progress-format.js';

export interface ProgressTracker {
  /** What the bar draws; the caller reads it, only the tracker writes it. */
  readonly state: ProgressState;
  update(done: number): void;
  /** All of a known total is done, whatever the last update said. */
  finish(): void;
  /** One more measurement, for the line that stays after the copy. */
  measureNow(): void;
  /** Ends the timer; the state stays as it is. */
  stop(): void;
}

/** Starts measuring from zero bytes now; `now` is in milliseconds. */
export function trackProgress(total: number | undefined, now: () => number = () => performance.now()): ProgressTracker {
  const meter = new RateMeter();
  const state: ProgressState = { done: 0, total, rate: 0 };
  meter.sample(now(), 0);
  const tick = setInterval(() => {
    state.rate = meter.sample(now(), state.done);
  }, 500).unref();
  return {
    state,
    update(done) {
      state.done = done;
    },
    finish() {
      if (total !== undefined) state.done = total;
    },
    measureNow() {
      // A last sample that tells no rate (no time or no bytes since the window began) would
      // leave a final line saying 0 B/s after a copy that moved: keep the rate measured.
      state.rate = meter.sample(now(), state.done) || state.rate;
    },
    stop() {
      clearInterval(tick);
    },
  };
}
