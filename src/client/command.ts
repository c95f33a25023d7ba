// One request in flight: what was asked, where its reply goes, how to settle its promise.
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES,
} from '../protocol/constants.js';
import type { NbdError } from '../protocol/errors.js';
import type { BlockStatusResult } from './types.js';

export interface Command {
  cookie: number;
  type: number;
  flags: number;
  offset: number;
  length: number;
  /** Read destination or write payload. */
  data: Uint8Array | null;
  /**
   * READ without a buffer yet (preadTake): supplies `data` when the reply's first data or
   * hole arrives, so the buffer is taken hot from the caller's pool, not at submit time.
   */
  take: (() => Uint8Array) | undefined;
  /** Bytes of read data (or holes) the server has covered so far. */
  seen: number;
  /** First error the server reported for this request; later ones are ignored. */
  error: NbdError | null;
  extents: BlockStatusResult | null;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
  /** WRITE only: called once the payload has been handed to the kernel (see pwrite). */
  onSent?: (() => void) | undefined;
  /** WRITE from a file (pwriteFromFile): the payload is `length` bytes of this fd from fileOffset. */
  fileFd?: number | undefined;
  fileOffset?: number | undefined;
}

const NAMES: Record<number, string> = {
  [CMD_READ]: 'pread', [CMD_WRITE]: 'pwrite', [CMD_DISC]: 'disconnect', [CMD_FLUSH]: 'flush',
  [CMD_TRIM]: 'trim', [CMD_CACHE]: 'cache', [CMD_WRITE_ZEROES]: 'zero', [CMD_BLOCK_STATUS]: 'block-status',
};

export function commandName(type: number): string {
  return NAMES[type] ?? `command ${type}`;
}
