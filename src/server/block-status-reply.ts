// One NBD_CMD_BLOCK_STATUS reply carrying a chunk per selected meta context, for backends that
// answer for several contexts at once (the nbd backend passes its upstream's extents on).
import { REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT } from '../protocol/constants.js';
import { blockStatusPayloadSize, encodeBlockStatus } from '../protocol/chunks.js';
import type { Cookie } from '../protocol/cookie.js';
import { chunkHeaderSize, encodeChunkHeader } from '../protocol/replies.js';
import type { Extent } from './backends/types.js';

/** A compact extent length must fit 32 bits; this cap also keeps 4 KiB alignment. */
const COMPACT_EXTENT_MAX = 0xffff_f000;

/**
 * Extents as the reply may carry them: REQ_ONE keeps the first; a compact reply cannot say
 * more than 32 bits per extent, so a longer one is cut and the list ends there (the client
 * asks again from where it stops).
 */
export function fitExtents(extents: readonly Extent[], extended: boolean, reqOne: boolean): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    if (e.length <= 0) break;
    if (!extended && e.length > COMPACT_EXTENT_MAX) {
      out.push({ length: COMPACT_EXTENT_MAX, flags: e.flags });
      break;
    }
    out.push(e);
    if (reqOne) break;
  }
  return out;
}

/**
 * The reply for `cookie`: one chunk per context that has extents, in selection order (ids
 * are positions + 1), the last flagged DONE. Undefined when no context has any.
 */
export function encodeContextsReply(
  extended: boolean, cookie: Cookie, offset: number, contexts: readonly string[],
  extents: Map<string, Extent[]>, reqOne: boolean,
): Buffer | undefined {
  const chunks: Array<{ id: number; list: Extent[] }> = [];
  contexts.forEach((name, i) => {
    const list = fitExtents(extents.get(name) ?? [], extended, reqOne);
    if (list.length > 0) chunks.push({ id: i + 1, list });
  });
  if (chunks.length === 0) return undefined;
  const h = chunkHeaderSize(extended);
  let total = 0;
  for (const c of chunks) total += h + blockStatusPayloadSize(c.list.length, extended);
  const buf = Buffer.allocUnsafe(total);
  let p = 0;
  chunks.forEach((c, i) => {
    const payload = blockStatusPayloadSize(c.list.length, extended);
    const done = i === chunks.length - 1 ? REPLY_FLAG_DONE : 0;
    encodeChunkHeader(buf, p, extended, done, extended ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS, cookie, offset, payload);
    encodeBlockStatus(buf, p + h, c.id, c.list, extended);
    p += h + payload;
  });
  return buf;
}
