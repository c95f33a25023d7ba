// Structured reads (libnbd's pread_structured): the caller's chunk callback sees each piece of
// a READ reply as it lands, and may fail the read; this file holds its types and how a
// callback's outcome becomes the read's result.
import { NbdError, type ErrnoCode } from '../protocol/errors.js';

/**
 * One piece of a READ reply, as preadStructured reports it (libnbd's LIBNBD_READ_DATA,
 * LIBNBD_READ_HOLE and LIBNBD_READ_ERROR).
 *
 * - `data`: `data` holds bytes the server sent for [offset, offset + length).
 * - `hole`: the server said [offset, offset + length) reads as zeroes; `data` is that part of
 *   the caller's buffer, already zeroed.
 * - `error`: the server reported `error` for the range starting at `offset`
 *   (NBD_REPLY_TYPE_ERROR_OFFSET); `length` is 0. An error without an offset, or a simple
 *   reply's error, is not a chunk: it only rejects the read.
 *
 * `offset` is the position in the export, not in the buffer. `data` is a view of the buffer
 * passed to preadStructured (at `offset - readOffset`). For `data` and `hole`, `error` is
 * the code of an earlier failure of this read (a server error chunk or a failed callback),
 * or undefined; for `error` it is the server's code for this chunk.
 */
export interface ReadChunk {
  status: 'data' | 'hole' | 'error';
  offset: number;
  length: number;
  data: Uint8Array;
  error: ErrnoCode | undefined;
}

/**
 * Called once per chunk of a structured read, in the order the chunks arrive (which may not
 * be the order of their offsets). To fail the read, throw (libnbd's callback returning -1):
 * an NbdError's code is the read's code, anything else means EPROTO (on an `error` chunk,
 * the server's code). The first failure of a read decides its error; later chunks still
 * reach the callback. A callback may return a promise: the read then settles only once
 * every such promise has, and a rejected one counts as a throw (after any failure already
 * recorded). The callback must not keep `data` past the read's end unless it owns the buffer.
 */
export type ChunkCallback = (chunk: ReadChunk) => void | Promise<void>;

/** The part of a READ command the chunk delivery needs. */
export interface ChunkTarget {
  onChunk: ChunkCallback | undefined;
  error: NbdError | null;
  /** Outcomes of callbacks that returned promises, in chunk order (undefined = success). */
  chunkWaits: Array<Promise<NbdError | undefined>> | null;
}

/** The error a failed callback gives the read: its own NbdError, else EPROTO (or the server's error on an error chunk). */
function callbackError(err: unknown, serverError: NbdError | undefined): NbdError {
  if (err instanceof NbdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (serverError !== undefined) return serverError;
  return new NbdError('EPROTO', `pread: chunk callback failed: ${message}`, { cause: err });
}

const succeeded = (): undefined => undefined;

/**
 * Hands one chunk to the command's callback. A throw records the read's error unless one is
 * already recorded; a returned promise is kept for settle time. `serverError` is the error
 * an `error` chunk reports (recorded by the caller after this, so a callback may replace it).
 */
export function deliverChunk(
  cmd: ChunkTarget, status: ReadChunk['status'], offset: number, data: Uint8Array, serverError?: NbdError,
): void {
  const chunk: ReadChunk = {
    status, offset, length: data.length, data, error: serverError?.code ?? cmd.error?.code,
  };
  let result: void | Promise<void>;
  try {
    result = cmd.onChunk!(chunk);
  } catch (err) {
    cmd.error ??= callbackError(err, serverError);
    return;
  }
  if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
    (cmd.chunkWaits ??= []).push(Promise.resolve(result).then(succeeded, (err: unknown) => callbackError(err, serverError)));
  }
}

/** Waits for the callbacks' promises and records the first failure among them if nothing failed before. */
export async function awaitChunkCallbacks(cmd: ChunkTarget): Promise<void> {
  const waits = cmd.chunkWaits!;
  cmd.chunkWaits = null;
  const outcomes = await Promise.all(waits);
  for (const e of outcomes) if (e !== undefined) cmd.error ??= e;
}
