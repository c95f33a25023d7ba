// Progress: bytes of the source done so far, after each finished range.
import type { CopyObserver } from '../observer.js';

/** Calls `report` with the running total of bytes done (written and acknowledged, or zero). */
export function progressObserver(report: (done: number) => void): CopyObserver {
  let done = 0;
  return {
    done(_offset, length) {
      done += length;
      report(done);
    },
  };
}
