// The few printf conversions nbdinfo's output relies on, done the C way.

/** printf("%Nd"): right-aligned in a field of `width`, never truncated. */
export function padNumber(n: number, width: number): string {
  return String(n).padStart(width, ' ');
}

/**
 * |x| as its decimal digits (no leading zero) and the power of ten of the first digit.
 * toExponential(100) gives 101 significant digits, which is every digit of the doubles we
 * print (percentages of disk sizes below 2^64 need fewer than 95), so ties can be seen.
 */
function decimalDigits(x: number): { digits: string; exp: number } {
  const s = Math.abs(x).toExponential(100);
  const e = s.indexOf('e');
  return { digits: (s[0]! + s.slice(2, e)).replace(/0+$/, ''), exp: Number(s.slice(e + 1)) };
}

/**
 * The first `keep` digits, rounded as glibc's printf rounds: to nearest, and a value exactly
 * halfway to the even neighbour (printf("%.1f", 6.25) is "6.2"; JavaScript's toFixed gives
 * "6.3"). A carry out of the first digit (9.96 -> 10.0) adds a digit and raises `exp`.
 */
function roundDigits(digits: string, exp: number, keep: number): { digits: string; exp: number } {
  if (keep >= digits.length) return { digits: digits.padEnd(Math.max(keep, 0), '0'), exp };
  if (keep < 0) return { digits: '', exp };
  const next = digits.charCodeAt(keep) - 48;
  const exactHalf = next === 5 && keep + 1 === digits.length;
  const lastKept = keep > 0 ? digits.charCodeAt(keep - 1) - 48 : 0;
  const head = digits.slice(0, keep);
  if (next < 5 || (exactHalf && lastKept % 2 === 0)) return { digits: head, exp };
  // Add one to the last kept digit, carrying to the left.
  const out = head.split('');
  let i = out.length - 1;
  while (i >= 0 && out[i] === '9') out[i--] = '0';
  if (i >= 0) return { digits: (out[i] = String(Number(out[i]) + 1), out.join('')), exp };
  return { digits: `1${out.join('')}`, exp: exp + 1 };
}

/** printf("%.Nf"), rounding ties to even like glibc. */
export function formatFixed(x: number, fractionDigits: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  let intPart = '0';
  let frac = '';
  if (x !== 0) {
    const d = decimalDigits(x);
    const r = roundDigits(d.digits, d.exp, d.exp + 1 + fractionDigits);
    const intLen = r.exp + 1;
    if (intLen <= 0) {
      frac = '0'.repeat(-intLen) + r.digits;
    } else {
      intPart = r.digits.slice(0, intLen).padEnd(intLen, '0');
      frac = r.digits.slice(intLen);
    }
  }
  frac = frac.padEnd(fractionDigits, '0').slice(0, fractionDigits);
  return `${sign}${intPart}${fractionDigits > 0 ? `.${frac}` : ''}`;
}

/**
 * printf("%g") with the default precision of 6: shortest of fixed / exponent notation,
 * trailing zeros removed, exponent with at least two digits ("5.96046e-06"), ties rounded
 * to even.
 */
export function formatG(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const precision = 6;
  // Round to `precision` significant digits first: the exponent after rounding decides.
  const d = decimalDigits(x);
  const r = roundDigits(d.digits, d.exp, precision);
  const e = r.exp;
  if (e < -4 || e >= precision) {
    let mantissa = `${r.digits[0]}.${r.digits.slice(1, precision)}`.replace(/\.?0+$/, '');
    if (x < 0) mantissa = `-${mantissa}`;
    return `${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  let fixed = formatFixed(x, precision - 1 - e);
  if (fixed.includes('.')) fixed = fixed.replace(/\.?0+$/, '');
  return fixed;
}

/** printf("%5.1f"). */
export function formatPercent1(x: number): string {
  return formatFixed(x, 1).padStart(5, ' ');
}
