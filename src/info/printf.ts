// The few printf conversions nbdinfo's output relies on, done the C way.

/** printf("%Nd"): right-aligned in a field of `width`, never truncated. */
export function padNumber(n: number, width: number): string {
  return String(n).padStart(width, ' ');
}

/**
 * printf("%g") with the default precision of 6: shortest of fixed / exponent notation,
 * trailing zeros removed, exponent with at least two digits ("5.96046e-06").
 */
export function formatG(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const precision = 6;
  // Round to `precision` significant digits first: the exponent after rounding decides.
  const exp = x.toExponential(precision - 1);
  const e = Number(exp.slice(exp.indexOf('e') + 1));
  if (e < -4 || e >= precision) {
    let mantissa = exp.slice(0, exp.indexOf('e'));
    if (mantissa.includes('.')) mantissa = mantissa.replace(/\.?0+$/, '');
    const sign = e < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  let fixed = x.toFixed(precision - 1 - e);
  if (fixed.includes('.')) fixed = fixed.replace(/\.?0+$/, '');
  return fixed;
}

/** printf("%5.1f"). */
export function formatPercent1(x: number): string {
  return x.toFixed(1).padStart(5, ' ');
}
