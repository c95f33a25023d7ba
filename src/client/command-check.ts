// The checks a command passes before it is sent: libnbd's strict mode, so a bad request fails
// here with a clear error instead of reaching the server (which may drop the connection).
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLUSH, CMD_READ, CMD_TRIM,
  CMD_WRITE, CMD_WRITE_ZEROES,
} from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import { commandName, type Command } from './command.js';
import type { StrictChecks } from './strict-mode.js';
import type { ConnectionInfo, ExportInfo } from './types.js';

/** Largest length a compact request header can carry. */
const U32_MAX = 0xffffffff;

/**
 * Why `cmd` may not be sent on a ready connection to this export, or null when it may.
 * `strict` says which of libnbd's strict checks are on (see StrictMode).
 */
export function checkCommand(cmd: Command, info: ExportInfo, conn: ConnectionInfo, strict: StrictChecks): NbdError | null {
  const { type, flags, offset, length } = cmd;
  const name = commandName(type);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    return new NbdError('EINVAL', `${name}: invalid offset ${offset} or length ${length}`);
  }
  if (!conn.extendedHeaders && length > U32_MAX) {
    return new NbdError('ERANGE', `${name}: length ${length} does not fit 32 bits without extended headers`);
  }
  if (type === CMD_FLUSH) {
    if (!info.canFlush && strict.commands) return new NbdError('ENOTSUP', 'flush: server does not support flush');
    return null;
  }
  const c = strict.commands;
  if (length === 0 && strict.zeroSize) return new NbdError('EINVAL', `${name}: zero-length request`);
  if (offset + length > info.size && strict.bounds) {
    return new NbdError('EINVAL', `${name}: request [${offset}, ${offset + length}) is beyond the end of the export (size ${info.size})`);
  }
  const writes = type === CMD_WRITE || type === CMD_TRIM || type === CMD_WRITE_ZEROES;
  if (writes && info.readOnly && c) return new NbdError('EPERM', `${name}: export is read-only`);
  if (type === CMD_TRIM && !info.canTrim && c) return new NbdError('ENOTSUP', 'trim: server does not support trim');
  if (type === CMD_WRITE_ZEROES && !info.canZero && c) return new NbdError('ENOTSUP', 'zero: server does not support write zeroes');
  if (type === CMD_CACHE && !info.canCache && c) return new NbdError('ENOTSUP', 'cache: server does not support cache');
  if (type === CMD_BLOCK_STATUS && conn.metaContexts.length === 0 && c) {
    return new NbdError('ENOTSUP', 'block-status: no meta context was negotiated');
  }
  if (!strict.flags) return checkSizes(name, type, offset, length, info, strict);
  if (flags & CMD_FLAG_FUA && !info.canFua) return new NbdError('EINVAL', `${name}: server does not support FUA`);
  if (flags & CMD_FLAG_DF && !(info.canDf && conn.structuredReplies)) {
    return new NbdError('EINVAL', `${name}: server does not support the DF flag`);
  }
  if (flags & CMD_FLAG_FAST_ZERO && !info.canFastZero) return new NbdError('EINVAL', `${name}: server does not support fast zero`);
  return checkSizes(name, type, offset, length, info, strict);
}

function checkSizes(name: string, type: number, offset: number, length: number, info: ExportInfo, strict: StrictChecks): NbdError | null {
  if (strict.align && info.blockSizeFromServer && info.blockSizeMinimum > 1 &&
    (offset % info.blockSizeMinimum !== 0 || length % info.blockSizeMinimum !== 0)) {
    return new NbdError('EINVAL', `${name}: offset ${offset} or length ${length} is not a multiple of the minimum block size ${info.blockSizeMinimum}`);
  }
  if (strict.payload && (type === CMD_READ || type === CMD_WRITE) && length > info.blockSizeMaximum) {
    return new NbdError('ERANGE', `${name}: ${length} bytes exceeds the maximum payload ${info.blockSizeMaximum}`);
  }
  return null;
}

/** Why a file WRITE's source (pwriteFromFile) is unusable, or null. */
export function checkFileSource(fd: number, fileOffset: number): NbdError | null {
  if (!Number.isSafeInteger(fileOffset) || fileOffset < 0 || !Number.isInteger(fd) || fd < 0) {
    return new NbdError('EINVAL', `pwrite from file: invalid fd ${fd} or file offset ${fileOffset}`);
  }
  return null;
}

/**
 * A block status length the header can carry: without extended headers, above 4 GiB it is
 * cut to the largest aligned 32-bit length (the answer may stop short anyway, so callers ask
 * again from where it ended).
 */
export function fitBlockStatusLength(length: number, info: ExportInfo, conn: ConnectionInfo): number {
  if (conn.extendedHeaders || length <= U32_MAX) return length;
  const align = Math.max(info.blockSizeMinimum, 1);
  return U32_MAX - (U32_MAX % align);
}
