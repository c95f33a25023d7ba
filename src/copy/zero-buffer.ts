// One shared, never-written buffer of zeroes: the source of zero writes and the reference
// for zero detection. Grown on demand; callers must treat it as read-only.
let zeroes: Buffer = Buffer.alloc(1 << 20);

export function zeroBuffer(minLength: number): Buffer {
  if (zeroes.length < minLength) zeroes = Buffer.alloc(minLength);
  return zeroes;
}

/**
 * True when buf[start, start+length) is all zero. A few single-byte probes reject typical
 * data without crossing into native code; the rest is one memcmp against the zero buffer.
 */
export function isZeroRange(buf: Buffer, start: number, length: number): boolean {
  const end = start + length;
  if (buf[end - 1] !== 0 || buf[start] !== 0 || buf[start + (length >>> 1)] !== 0) return false;
  return buf.compare(zeroBuffer(length), 0, length, start, end) === 0;
}
