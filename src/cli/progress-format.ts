// How progress reads to people: sizes (1.7 GiB), rates (310 MiB/s), times left (7s, 2m05s),
// a rate measured over the last few seconds, and a line fitted to the terminal's width.

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 1.7 GiB; whole bytes below 1 KiB. */
export function humanSize(bytes: number): string {
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} ${UNITS[0]}`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

export function humanRate(bytesPerSecond: number): string {
  return `${humanSize(bytesPerSecond)}/s`.replace('bytes/s', 'B/s');
}

/** 7s, 2m05s, 1h02m. */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Bytes per second over the last `windowMs` of samples (the whole run until then). */
export class RateMeter {
  private readonly samples: Array<[number, number]> = [];

  constructor(private readonly windowMs = 5000) {}

  /** Records `done` bytes at time `now` (ms) and returns the rate. */
  sample(now: number, done: number): number {
    const s = this.samples;
    s.push([now, done]);
    while (s.length > 2 && now - s[1]![0] >= this.windowMs) s.shift();
    const [t0, d0] = s[0]!;
    return now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
  }
}

/** What one progress report says. `total` undefined: a stream of unknown length. */
export interface ProgressState {
  done: number;
  total: number | undefined;
  /** Bytes per second. */
  rate: number;
}

export function percent(s: ProgressState): number {
  if (s.total === undefined) return 0;
  if (s.total === 0) return 100;
  return Math.min(100, Math.floor((s.done * 100) / s.total));
}

/** Seconds left, or undefined when it cannot be told (unknown total, no rate yet). */
export function eta(s: ProgressState): number | undefined {
  if (s.total === undefined || s.rate <= 0) return undefined;
  return Math.max(0, (s.total - s.done) / s.rate);
}

/** The words of a report, most important first: percent, bytes, rate, time left. */
function fields(s: ProgressState): string[] {
  const out: string[] = [];
  if (s.total !== undefined) out.push(`${percent(s)}%`, `${humanSize(s.done)}/${humanSize(s.total)}`);
  else out.push(humanSize(s.done));
  out.push(humanRate(s.rate));
  const left = eta(s);
  if (left !== undefined) out.push(`eta ${humanDuration(left)}`);
  return out;
}

/** `nbdcopy: 42% 1.7 GiB/4.0 GiB 310 MiB/s eta 7s` (for logs: no bar, no \r). */
export function plainLine(s: ProgressState): string {
  return fields(s).join(' ');
}

const MIN_BAR = 5;

/**
 * A bar and as many words as fit in `columns - 1` characters (the last column is left free
 * so the terminal never wraps): words are dropped from the least important, then the bar
 * shrinks, down to the percent alone.
 */
export function barLine(s: ProgressState, columns: number): string {
  const width = Math.max(1, columns - 1);
  const words = fields(s);
  for (let n = words.length; n >= 1; n--) {
    const text = words.slice(0, n).join(' ');
    const room = width - text.length - 3;
    if (room >= MIN_BAR && s.total !== undefined) {
      const bar = Math.min(room, 40);
      const filled = Math.round((percent(s) / 100) * bar);
      return `[${'#'.repeat(filled)}${'-'.repeat(bar - filled)}] ${text}`;
    }
    if (s.total === undefined && text.length <= width) return text;
  }
  return words[0]!.slice(0, width);
}
