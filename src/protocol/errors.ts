// The one error type of the toolkit: an errno-style code plus, when a server sent one,
// its own message. Client, server, copy and info all throw it; the CLIs print it as one line.
import {
  NBD_EINVAL, NBD_EIO, NBD_ENOMEM, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW, NBD_EPERM, NBD_ESHUTDOWN,
} from './constants.js';

export type ErrnoCode =
  | 'EPERM' | 'EIO' | 'ENOMEM' | 'EINVAL' | 'ENOSPC' | 'EOVERFLOW' | 'ENOTSUP' | 'ESHUTDOWN'
  | 'ERANGE' | 'ENOENT' | 'ECONNREFUSED' | 'ECONNRESET' | 'EPROTO' | 'ETIMEDOUT' | 'ENOTCONN'
  | 'ECANCELED' | 'EACCES' | 'EBADMSG' | 'EINTR' | 'EEXIST' | 'EISDIR' | 'ENOTDIR';

const WIRE_TO_CODE: Record<number, ErrnoCode> = {
  [NBD_EPERM]: 'EPERM',
  [NBD_EIO]: 'EIO',
  [NBD_ENOMEM]: 'ENOMEM',
  [NBD_EINVAL]: 'EINVAL',
  [NBD_ENOSPC]: 'ENOSPC',
  [NBD_EOVERFLOW]: 'EOVERFLOW',
  [NBD_ENOTSUP]: 'ENOTSUP',
  [NBD_ESHUTDOWN]: 'ESHUTDOWN',
};

const CODE_TO_WIRE: Partial<Record<ErrnoCode, number>> = Object.fromEntries(
  Object.entries(WIRE_TO_CODE).map(([wire, code]) => [code, Number(wire)]),
);

export class NbdError extends Error {
  readonly code: ErrnoCode;
  /** The text the server sent with the error, when it sent one. */
  readonly serverMessage: string | undefined;

  constructor(code: ErrnoCode, message: string, options?: { serverMessage?: string; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'NbdError';
    this.code = code;
    this.serverMessage = options?.serverMessage;
  }
}

/** Maps an error value received on the wire to a code; unknown values read as EINVAL, as the spec asks. */
export function codeFromWire(value: number): ErrnoCode {
  return WIRE_TO_CODE[value] ?? 'EINVAL';
}

/** Maps a code to the value a server sends; codes with no wire value travel as EIO. */
export function wireFromCode(code: ErrnoCode | string): number {
  return CODE_TO_WIRE[code as ErrnoCode] ?? NBD_EIO;
}
