// Limits a copy to some ranges of the source (a resumed copy, a dirty bitmap): the planner
// copies only these, and leaves the rest of the destination as it is.
import type { RangeList } from './done-ranges.js';

export interface RangeSource {
  /** Short name for messages (`-v`). */
  readonly name: string;
  /** The parts of [offset, offset+length) to copy, in order, as [start, end) pairs. */
  ranges(offset: number, length: number, conn: number): RangeList | Promise<RangeList>;
}
