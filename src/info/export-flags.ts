// The per-export lines that text and JSON output print alike, by libnbd's names and in its
// order; only the formatting around them differs.
import type { ExportFacts } from './facts.js';

/** The eight can_* flags, in the order libnbd prints them. */
export function canFlags(e: ExportFacts): Array<[string, boolean]> {
  return [
    ['can_cache', e.canCache],
    ['can_df', e.canDf],
    ['can_fast_zero', e.canFastZero],
    ['can_flush', e.canFlush],
    ['can_fua', e.canFua],
    ['can_multi_conn', e.canMultiConn],
    ['can_trim', e.canTrim],
    ['can_zero', e.canZero],
  ];
}

/** The block size constraints the server stated (libnbd leaves out zero ones). */
export function statedBlockSizes(e: ExportFacts): Array<[string, number]> {
  const b = e.blockSizes;
  if (!b) return [];
  const sizes: Array<[string, number]> = [
    ['block_size_minimum', b.minimum],
    ['block_size_preferred', b.preferred],
    ['block_size_maximum', b.maximum],
  ];
  return sizes.filter(([, value]) => value > 0);
}
