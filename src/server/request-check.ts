// What is wrong with a request, judged from its header alone (a WRITE payload is not needed,
// so a doomed payload can be skipped instead of kept): unknown commands, flags the command or
// the connection does not allow, writes to a read-only export, ranges past the end.
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES,
  FLAG_BLOCK_STATUS_PAYLOAD, FLAG_SEND_FAST_ZERO, FLAG_SEND_FUA,
} from '../protocol/constants.js';
import type { ErrnoCode } from '../protocol/errors.js';
import { blockStatusFilterSize, type RequestHeader } from '../protocol/requests.js';
import { ReplyStyle } from '../protocol/replies.js';
import type { Backend } from './backends/types.js';
import { MAX_PAYLOAD } from './options.js';

export interface Rejection {
  code: ErrnoCode;
  message: string;
}

const COMMAND_NAMES: Record<number, string> = {
  [CMD_READ]: 'read', [CMD_WRITE]: 'write', [CMD_DISC]: 'disconnect', [CMD_FLUSH]: 'flush', [CMD_TRIM]: 'trim',
  [CMD_CACHE]: 'cache', [CMD_WRITE_ZEROES]: 'write zeroes', [CMD_BLOCK_STATUS]: 'block status',
};

export function commandName(type: number): string {
  return COMMAND_NAMES[type] ?? `command ${type}`;
}

/** What one connection allows: fixed once transmission starts. */
export interface RequestRules {
  backend: Backend;
  /** The export size as the client was told it. */
  size: number;
  style: ReplyStyle;
  transmissionFlags: number;
  /** The export takes writes (not read-only, and the backend can store data). */
  writable: boolean;
  /** How many meta contexts the client selected (block status needs one; a filter names at most all). */
  metaContexts: number;
}

export function checkRequest(req: RequestHeader, rules: RequestRules): Rejection | undefined {
  const { type, flags, offset, length } = req;
  const { backend, style } = rules;
  const tflags = rules.transmissionFlags;
  let allowed = (tflags & FLAG_SEND_FUA) !== 0 ? CMD_FLAG_FUA : 0;
  switch (type) {
    case CMD_READ: if (style !== ReplyStyle.Simple) allowed |= CMD_FLAG_DF; break;
    case CMD_WRITE: if (style === ReplyStyle.Extended) allowed |= CMD_FLAG_PAYLOAD_LEN; break;
    case CMD_WRITE_ZEROES:
      allowed |= CMD_FLAG_NO_HOLE;
      if ((tflags & FLAG_SEND_FAST_ZERO) !== 0) allowed |= CMD_FLAG_FAST_ZERO;
      break;
    case CMD_BLOCK_STATUS:
      allowed |= CMD_FLAG_REQ_ONE;
      if ((tflags & FLAG_BLOCK_STATUS_PAYLOAD) !== 0 && style === ReplyStyle.Extended) allowed |= CMD_FLAG_PAYLOAD_LEN;
      break;
    case CMD_FLUSH: case CMD_TRIM: case CMD_CACHE: break;
    default: return { code: 'EINVAL', message: `unknown command ${type}` };
  }
  if ((flags & ~allowed) !== 0) return { code: 'EINVAL', message: `invalid flags 0x${flags.toString(16)} for ${commandName(type)}` };

  const isWrite = type === CMD_WRITE || type === CMD_WRITE_ZEROES || type === CMD_TRIM;
  if (isWrite && !rules.writable) return { code: 'EPERM', message: 'the export is read-only' };
  if (type === CMD_TRIM && !backend.canTrim) return { code: 'EINVAL', message: 'trim is not supported' };
  if (type === CMD_WRITE_ZEROES && !backend.canZero) return { code: 'EINVAL', message: 'write zeroes is not supported' };
  if (type === CMD_FLUSH) {
    if (offset !== 0 || length !== 0) return { code: 'EINVAL', message: 'flush must have offset and length 0' };
    return undefined;
  }
  if (type === CMD_BLOCK_STATUS) {
    if (rules.metaContexts === 0) return { code: 'EINVAL', message: 'block status without a negotiated meta context' };
    // The payload form: `length` is the payload's, 8 + 4 bytes per context id; its effect
    // length and ids are checked once it has arrived (checkStatusFilter).
    if ((flags & CMD_FLAG_PAYLOAD_LEN) !== 0) {
      if (length < blockStatusFilterSize(1) || length > blockStatusFilterSize(rules.metaContexts) || (length - 8) % 4 !== 0) {
        return { code: 'EINVAL', message: `block status payload of ${length} bytes (8 + 4 per context id, 1 to ${rules.metaContexts} ids)` };
      }
      return undefined;
    }
    if (length === 0) return { code: 'EINVAL', message: 'block status of length 0' };
  }
  const size = rules.size;
  if (offset > size || length > size - offset) {
    const code: ErrnoCode = type === CMD_WRITE || type === CMD_WRITE_ZEROES ? 'ENOSPC' : 'EINVAL';
    return { code, message: `request [${offset}, +${length}) is beyond the end of the export (${size} bytes)` };
  }
  if ((type === CMD_READ || type === CMD_WRITE) && length > MAX_PAYLOAD) {
    // With simple replies a client must respect the limit; with structured ones the spec
    // lets a server refuse big reads with EOVERFLOW so the client retries smaller.
    const code: ErrnoCode = type === CMD_READ && style === ReplyStyle.Simple ? 'EINVAL' : 'EOVERFLOW';
    return { code, message: `${commandName(type)} of ${length} bytes exceeds the maximum payload ${MAX_PAYLOAD}` };
  }
  return undefined;
}
