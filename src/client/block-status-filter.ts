// Block status limited to some of the negotiated meta contexts (libnbd's block_status_filter):
// which requests may be sent, the wire ids they name, and the check of the answer.
import { NbdError } from '../protocol/errors.js';
import type { StrictChecks } from './strict-mode.js';
import type { BlockStatusResult, ConnectionInfo, ExportInfo } from './types.js';

/** The largest request payload libnbd builds (its MAX_REQUEST_SIZE). */
const MAX_REQUEST_PAYLOAD = 64 * 1024 * 1024;

/**
 * The wire ids of `contexts` for a filtered block status on this connection, or why it may
 * not be sent, in libnbd's order: extended headers are a must (the payload form needs them);
 * with strict `commands`, the server must advertise the payload form and a context must have
 * been negotiated; every name must be a negotiated context; the payload must fit.
 */
export function filterIds(
  contexts: readonly string[], negotiated: ReadonlyMap<number, string>, info: ExportInfo, conn: ConnectionInfo,
  strict: StrictChecks,
): number[] | NbdError {
  const name = 'block-status-filter';
  if (!conn.extendedHeaders) return new NbdError('ENOTSUP', `${name}: server does not support extended headers`);
  if (strict.commands) {
    if (!info.canBlockStatusPayload) return new NbdError('EINVAL', `${name}: server does not support the block status payload flag`);
    if (negotiated.size === 0) return new NbdError('ENOTSUP', `${name}: no meta context was negotiated`);
  }
  const ids: number[] = [];
  for (const wanted of contexts) {
    let id: number | undefined;
    for (const [i, n] of negotiated) if (n === wanted) id = i;
    if (id === undefined) return new NbdError('EINVAL', `${name}: context ${wanted} was not negotiated`);
    ids.push(id);
  }
  const payload = 8 + 4 * ids.length;
  if (payload > MAX_REQUEST_PAYLOAD || (strict.payload && payload > info.blockSizeMaximum)) {
    return new NbdError('ERANGE', `${name}: filter of ${ids.length} contexts is too large`);
  }
  return ids;
}

/** The answer, unless it names a context the request left out (the server ignored the filter). */
export function checkFilteredReply(result: BlockStatusResult, contexts: readonly string[]): BlockStatusResult {
  for (const got of result.keys()) {
    if (!contexts.includes(got)) {
      throw new NbdError('EPROTO', `block-status-filter: server answered for context ${got}, which the filter left out`);
    }
  }
  return result;
}
