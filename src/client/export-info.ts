// Turns what the handshake said about an export into the public ExportInfo shape.
import {
  DEFAULT_MAX_PAYLOAD, FLAG_BLOCK_STATUS_PAYLOAD, FLAG_CAN_MULTI_CONN, FLAG_READ_ONLY, FLAG_ROTATIONAL,
  FLAG_SEND_CACHE, FLAG_SEND_DF, FLAG_SEND_FAST_ZERO, FLAG_SEND_FLUSH, FLAG_SEND_FUA, FLAG_SEND_RESIZE,
  FLAG_SEND_TRIM, FLAG_SEND_WRITE_ZEROES,
} from '../protocol/constants.js';
import type { ExportInfo } from './types.js';

export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface ExportFacts {
  exportName: string;
  size: number;
  exactSize?: bigint;
  transmissionFlags: number;
  canonicalName?: string;
  description?: string;
  blockSizes?: BlockSizes;
}

export function makeExportInfo(f: ExportFacts): ExportInfo {
  const t = f.transmissionFlags;
  const has = (bit: number): boolean => (t & bit) !== 0;
  const info: ExportInfo = {
    exportName: f.exportName,
    size: f.size,
    exactSize: f.exactSize ?? BigInt(f.size),
    transmissionFlags: t,
    readOnly: has(FLAG_READ_ONLY),
    canFlush: has(FLAG_SEND_FLUSH),
    canFua: has(FLAG_SEND_FUA),
    rotational: has(FLAG_ROTATIONAL),
    canTrim: has(FLAG_SEND_TRIM),
    canZero: has(FLAG_SEND_WRITE_ZEROES),
    canDf: has(FLAG_SEND_DF),
    canMultiConn: has(FLAG_CAN_MULTI_CONN),
    canResize: has(FLAG_SEND_RESIZE),
    canCache: has(FLAG_SEND_CACHE),
    canFastZero: has(FLAG_SEND_FAST_ZERO),
    canBlockStatusPayload: has(FLAG_BLOCK_STATUS_PAYLOAD),
    blockSizeMinimum: f.blockSizes?.minimum ?? 1,
    blockSizePreferred: f.blockSizes?.preferred ?? 4096,
    blockSizeMaximum: f.blockSizes?.maximum ?? DEFAULT_MAX_PAYLOAD,
    blockSizeFromServer: f.blockSizes !== undefined,
  };
  if (f.canonicalName !== undefined) info.canonicalName = f.canonicalName;
  if (f.description !== undefined) info.description = f.description;
  return info;
}
