// Durations on the command line (--retry-delay=DURATION): a number with an optional unit,
// ms, s, m or h (`500ms`, `1.5s`, `2m`); a bare number is seconds, as with sleep(1).
import { NbdError } from '../protocol/errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, '': 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in `text`; throws NbdError EINVAL naming `what` when it is not a duration. */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (m === null) throw new NbdError('EINVAL', `${what}: could not parse duration '${text}' (examples: 500ms, 2s, 1m)`);
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? '').toLowerCase()]!;
  if (!Number.isFinite(ms) || ms > 24 * 3_600_000) throw new NbdError('EINVAL', `${what}: duration '${text}' is too long (at most 24h)`);
  return Math.round(ms);
}
