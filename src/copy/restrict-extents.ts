// Cuts a window's extents down to the ranges a copy must cover (a resumed copy, a dirty
// bitmap): the parts outside become `skip`, which the planner steps over without any work.
import type { SourceExtent } from './endpoint.js';
import type { RangeList } from './done-ranges.js';

/** An extent of the plan: copied (data or zero), or skipped (left as it is on the destination). */
export interface PlannedExtent extends SourceExtent {
  skip?: boolean;
}

/**
 * Wanted ranges widened to whole blocks (copying a little more of the source is harmless;
 * half a block could not be written on a destination with a large minimum block size).
 */
export function widenToBlocks(wanted: RangeList, block: number, sourceEnd: number): RangeList {
  const out: RangeList = [];
  for (const [s, e] of wanted) {
    const start = s - (s % block);
    const end = Math.min(sourceEnd, Math.ceil(e / block) * block);
    const last = out[out.length - 1];
    if (last !== undefined && last[1] >= start) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

/** `extents` (contiguous, in order) with everything outside `wanted` marked skip. */
export function restrictExtents(extents: readonly SourceExtent[], wanted: RangeList): PlannedExtent[] {
  const out: PlannedExtent[] = [];
  const push = (offset: number, length: number, zero: boolean, skip: boolean): void => {
    if (length <= 0) return;
    const last = out[out.length - 1];
    if (last !== undefined && (last.skip === true) === skip && (skip || last.zero === zero)) last.length += length;
    else out.push(skip ? { offset, length, zero: false, skip: true } : { offset, length, zero });
  };
  let w = 0;
  for (const e of extents) {
    const end = e.offset + e.length;
    let at = e.offset;
    while (at < end) {
      while (w < wanted.length && wanted[w]![1] <= at) w++;
      const r = wanted[w];
      if (r === undefined || r[0] >= end) {
        push(at, end - at, e.zero, true);
        at = end;
      } else if (r[0] > at) {
        push(at, r[0] - at, e.zero, true);
        at = r[0];
      } else {
        const to = Math.min(end, r[1]);
        push(at, to - at, e.zero, false);
        at = to;
      }
    }
  }
  return out;
}
