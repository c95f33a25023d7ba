// How nbdinfo names the raw type of an extent, per meta context, and which colours it uses.
import { ANSI } from './ansi.js';

export interface ExtentStyle {
  /** Absent when nbdinfo does not know this context or type: the field is then left out. */
  description?: string;
  fg?: string;
  bg?: string;
}

const BASE_ALLOCATION: Record<number, ExtentStyle> = {
  0: { description: 'data', fg: ANSI.fgBoldBlack },
  1: { description: 'hole' },
  2: { description: 'zero' },
  3: { description: 'hole,zero' },
};

const DIRTY_BITMAP: Record<number, ExtentStyle> = {
  0: { description: 'clean', fg: ANSI.fgGreen },
  1: { description: 'dirty', fg: ANSI.fgRed },
};

const UNKNOWN: ExtentStyle = {};

export function describeExtent(context: string, type: number): ExtentStyle {
  if (context === 'base:allocation') return BASE_ALLOCATION[type] ?? UNKNOWN;
  if (context.startsWith('qemu:dirty-bitmap:')) return DIRTY_BITMAP[type] ?? UNKNOWN;
  if (context === 'qemu:allocation-depth') {
    if (type === 0) return { description: 'absent' };
    if (type === 1) return { description: 'local', fg: ANSI.fgBrightWhite, bg: ANSI.bgBlack };
    return { description: `backing depth ${type}`, bg: ANSI.bgLightGrey };
  }
  return UNKNOWN;
}
