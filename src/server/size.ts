// Sizes on the command line follow nbdkit: a number with an optional binary suffix
// (b, k/K, m/M, g/G, t/T, p/P, e/E; "1M" = 1 MiB). Results stay exact JS integers.
import { NbdError } from '../protocol/errors.js';

const SUFFIX_SHIFT: Record<string, number> = { b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

export function parseSize(text: string): number {
  const match = /^\s*(\d+)\s*([bkmgtpeBKMGTPE]?)(?:i?[bB])?\s*$/.exec(text);
  if (!match) throw new NbdError('EINVAL', `cannot parse size '${text}'`);
  const shift = SUFFIX_SHIFT[(match[2] ?? '').toLowerCase()] ?? 0;
  const value = Number(match[1]) * 2 ** shift;
  if (!Number.isSafeInteger(value)) throw new NbdError('EOVERFLOW', `size '${text}' is too large`);
  return value;
}
