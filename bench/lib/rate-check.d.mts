export const AVERAGE_TOLERANCE: number;
export const SECOND_TOLERANCE: number;
export interface RateFigures {
  average: number;
  averageOff: number;
  perSecond: number[];
  worst: number;
  worstOver: number;
  ok: boolean;
}
export function rateFigures(samples: Array<{ t: number; bytes: number }>, done: { bytes: number; seconds: number }, cap: number): RateFigures;
