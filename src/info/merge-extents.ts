// Adjacent extents with the same type are printed as one, as libnbd's nbdinfo does: servers
// split their answers at request boundaries and internal block edges that mean nothing to users.
import type { Extent } from '../client/types.js';

export interface PlacedExtent {
  offset: number;
  length: number;
  type: number;
}

export function mergeExtents(extents: readonly Extent[]): PlacedExtent[] {
  const out: PlacedExtent[] = [];
  let offset = 0;
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last !== undefined && last.type === e.flags) last.length += e.length;
    else out.push({ offset, length: e.length, type: e.flags });
    offset += e.length;
  }
  return out;
}
