// JSON string quoting exactly as libnbd's nbdinfo does it: only '"', '\' and control
// characters are escaped (as \u00XX); everything else, non-ASCII included, goes out raw.
// The result is valid JSON and byte-identical to the C tool's output.

const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

export function jsonString(s: string): string {
  if (!NEEDS_ESCAPE.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\' + s[i];
    else if (c < 0x20) out += '\\u' + c.toString(16).padStart(4, '0');
    else out += s[i];
  }
  return out + '"';
}
