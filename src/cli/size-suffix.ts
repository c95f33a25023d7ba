// Sizes on the command line: plain bytes or a binary suffix (512, 256K, 1M, 2G, 1MiB).
import { NbdError } from '../protocol/errors.js';

const SHIFT: Record<string, number> = { '': 0, b: 0, k: 10, m: 20, g: 30, t: 40, p: 50, e: 60 };

/** Parses `text` as a byte count; throws NbdError EINVAL naming `what` when it is not one. */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+)\s*([bkmgtpe]?)(i?b)?\s*$/i.exec(text);
  if (m === null || (m[2] === '' && m[3] !== undefined && m[3].toLowerCase() !== 'b')) {
    throw new NbdError('EINVAL', `${what}: could not parse size '${text}'`);
  }
  const unit = m[2]!.toLowerCase();
  const value = Number(m[1]) * 2 ** SHIFT[unit]!;
  if (!Number.isSafeInteger(value)) throw new NbdError('EINVAL', `${what}: size '${text}' is too large`);
  return value;
}

/** Parses a plain non-negative integer (counts, file descriptors). */
export function parseCount(text: string, what: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new NbdError('EINVAL', `${what}: expected a number, got '${text}'`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new NbdError('EINVAL', `${what}: '${text}' is too large`);
  return value;
}
