// Cookies are opaque: the side that sends a request picks 64 bits, and every reply to it
// carries the same 64 bits back. A server must echo whatever its client picked (the Linux
// kernel puts a counter in the high half), so a received cookie is held as two 32-bit
// halves: any value round-trips exactly, with no bigint per request. A side that picks its
// own cookies may use a plain number below 2^53 instead (our client counts up from 1).

import { writeU64 } from './bytes.js';

const TWO_32 = 0x1_0000_0000;

/** A cookie as received: its high and low 32 bits. */
export interface Cookie {
  cookieHi: number;
  cookieLo: number;
}

/** Reads the 64-bit cookie at `off` into `into` (any value, exactly). */
export function readCookie(buf: Uint8Array, off: number, into: Cookie): void {
  const b = buf as Buffer;
  into.cookieHi = b.readUInt32BE(off);
  into.cookieLo = b.readUInt32BE(off + 4);
}

/** Writes a cookie, given as received halves or as a number below 2^53. */
export function writeCookie(buf: Uint8Array, off: number, cookie: number | Cookie): void {
  if (typeof cookie === 'number') return writeU64(buf, off, cookie);
  const b = buf as Buffer;
  b.writeUInt32BE(cookie.cookieHi, off);
  b.writeUInt32BE(cookie.cookieLo, off + 4);
}

/** A received cookie as a number: exact below 2^53, which covers every counting client. */
export function cookieNumber(cookie: Cookie): number {
  return cookie.cookieHi * TWO_32 + cookie.cookieLo;
}
