// Transmission flags of an export as this connection will see them.
import {
  FLAG_BLOCK_STATUS_PAYLOAD, FLAG_CAN_MULTI_CONN, FLAG_HAS_FLAGS, FLAG_READ_ONLY, FLAG_SEND_CACHE, FLAG_SEND_DF, FLAG_SEND_FAST_ZERO,
  FLAG_SEND_FLUSH, FLAG_SEND_FUA, FLAG_SEND_TRIM, FLAG_SEND_WRITE_ZEROES,
} from '../protocol/constants.js';
import type { ResolvedExport } from './options.js';

/**
 * `statusPayload`: the client negotiated extended headers and meta contexts for this export,
 * so block status may name the contexts it wants (the spec says to advertise the payload
 * form only then).
 */
export function transmissionFlags(exp: ResolvedExport, structured: boolean, statusPayload = false): number {
  const b = exp.backend;
  const writable = !exp.readOnly && b.writable;
  const payload = statusPayload ? FLAG_BLOCK_STATUS_PAYLOAD : 0;
  if (b.transmissionFlags !== undefined) return (givenFlags(b.transmissionFlags, writable, structured) & ~FLAG_BLOCK_STATUS_PAYLOAD) | payload;
  let flags = FLAG_HAS_FLAGS;
  if (!writable) flags |= FLAG_READ_ONLY;
  if (writable && b.canFlush) flags |= FLAG_SEND_FLUSH | FLAG_SEND_FUA;
  if (writable && b.canTrim) flags |= FLAG_SEND_TRIM;
  if (writable && b.canZero) {
    flags |= FLAG_SEND_WRITE_ZEROES;
    if (b.canFastZero) flags |= FLAG_SEND_FAST_ZERO;
  }
  // DF only means something when reads can be fragmented, i.e. with structured replies.
  if (structured) flags |= FLAG_SEND_DF;
  if (b.multiConn) flags |= FLAG_CAN_MULTI_CONN;
  if (b.canCache) flags |= FLAG_SEND_CACHE;
  return flags | payload;
}

const WRITE_FLAGS = FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_SEND_FAST_ZERO;

/** A backend's own flags, limited to what this export and reply style allow. */
function givenFlags(given: number, writable: boolean, structured: boolean): number {
  let flags = given | FLAG_HAS_FLAGS;
  if (!writable) flags = (flags | FLAG_READ_ONLY) & ~WRITE_FLAGS;
  if (!structured) flags &= ~FLAG_SEND_DF;
  return flags;
}
