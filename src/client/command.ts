// One request of the transmission phase: what was asked, where its reply goes, how its promise settles.
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES,
} from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import { blockStatusFilterSize, encodeBlockStatusFilter } from '../protocol/requests.js';
import { awaitChunkCallbacks, type ChunkCallback } from './read-chunks.js';
import type { BlockStatusFlags, BlockStatusResult, CommandFlags, ReadFlags, ZeroFlags } from './types.js';

const NAMES: Record<number, string> = {
  [CMD_READ]: 'pread', [CMD_WRITE]: 'pwrite', [CMD_DISC]: 'disconnect', [CMD_FLUSH]: 'flush',
  [CMD_TRIM]: 'trim', [CMD_CACHE]: 'cache', [CMD_WRITE_ZEROES]: 'zero', [CMD_BLOCK_STATUS]: 'block-status',
};

export function commandName(type: number): string {
  return NAMES[type] ?? `command ${type}`;
}

function unsettled(): void {}

function fua(flags: CommandFlags | undefined): number {
  return flags?.fua ? CMD_FLAG_FUA : 0;
}

function readFlags(flags: ReadFlags | undefined): number {
  return flags?.df ? CMD_FLAG_DF : 0;
}

/**
 * Every field is set in the constructor, so all commands share one shape and the reply
 * reader's accesses to them stay monomorphic. The factories below map the public call's
 * arguments and flag objects to the wire fields; the client submits what they return.
 */
export class Command {
  /** Given by the RequestWriter when the request is sent; replies are matched on it. */
  cookie = 0;
  /** Read destination or write payload. */
  data: Uint8Array | null = null;
  /**
   * READ without a buffer yet (preadTake): supplies `data` when the reply's first data or
   * hole arrives, so the buffer is taken hot from the caller's pool, not at submit time.
   */
  take: (() => Uint8Array) | undefined = undefined;
  /** Bytes of read data (or holes) the server has covered so far. */
  seen = 0;
  /**
   * READ whose chunks came out of order: the covered ranges of the request as sorted
   * [start, end) pairs, so an overlap is caught (while chunks come in order, [0, seen) is all).
   */
  covered: number[] | null = null;
  /** First error the server reported for this request; later ones are ignored. */
  error: NbdError | null = null;
  extents: BlockStatusResult | null = null;
  resolve: (value: unknown) => void = unsettled;
  reject: (reason: unknown) => void = unsettled;
  /** WRITE only: called once the payload has been handed to the kernel (see pwrite). */
  onSent: (() => void) | undefined = undefined;
  /** WRITE from a file (pwriteFromFile): the payload is `length` bytes of this fd from fileOffset. */
  fileFd: number | undefined = undefined;
  fileOffset = 0;
  /** READ from preadStructured: told about each chunk of the reply (see ChunkCallback). */
  onChunk: ChunkCallback | undefined = undefined;
  /** Promises the chunk callback returned, awaited before the read settles. */
  chunkWaits: Array<Promise<NbdError | undefined>> | null = null;

  constructor(readonly type: number, readonly flags: number, readonly offset: number, readonly length: number) {}

  static read(buf: Uint8Array, offset: number, flags?: ReadFlags): Command {
    const cmd = new Command(CMD_READ, readFlags(flags), offset, buf.length);
    cmd.data = buf;
    return cmd;
  }

  /** A READ whose buffer comes from `take` when its data starts to arrive (preadTake). */
  static readTaking(length: number, offset: number, take: () => Uint8Array, flags?: ReadFlags): Command {
    const cmd = new Command(CMD_READ, readFlags(flags), offset, length);
    cmd.take = take;
    return cmd;
  }

  /** A READ whose reply chunks are reported to `onChunk` as they land (preadStructured). */
  static readStructured(buf: Uint8Array, offset: number, onChunk: ChunkCallback, flags?: ReadFlags): Command {
    const cmd = Command.read(buf, offset, flags);
    cmd.onChunk = onChunk;
    return cmd;
  }

  static write(buf: Uint8Array, offset: number, flags?: CommandFlags, onSent?: () => void): Command {
    const cmd = new Command(CMD_WRITE, fua(flags), offset, buf.length);
    cmd.data = buf;
    cmd.onSent = onSent;
    return cmd;
  }

  static writeFromFile(
    fd: number, fileOffset: number, length: number, offset: number, flags?: CommandFlags, onSent?: () => void,
  ): Command {
    const cmd = new Command(CMD_WRITE, fua(flags), offset, length);
    cmd.fileFd = fd;
    cmd.fileOffset = fileOffset;
    cmd.onSent = onSent;
    return cmd;
  }

  static flush(): Command {
    return new Command(CMD_FLUSH, 0, 0, 0);
  }

  static trim(length: number, offset: number, flags?: CommandFlags): Command {
    return new Command(CMD_TRIM, fua(flags), offset, length);
  }

  static zero(length: number, offset: number, flags?: ZeroFlags): Command {
    let f = fua(flags);
    if (flags?.noHole) f |= CMD_FLAG_NO_HOLE;
    if (flags?.fastZero) f |= CMD_FLAG_FAST_ZERO;
    return new Command(CMD_WRITE_ZEROES, f, offset, length);
  }

  static cache(length: number, offset: number): Command {
    return new Command(CMD_CACHE, 0, offset, length);
  }

  static blockStatus(length: number, offset: number, flags?: BlockStatusFlags): Command {
    return new Command(CMD_BLOCK_STATUS, flags?.reqOne ? CMD_FLAG_REQ_ONE : 0, offset, length);
  }

  /**
   * BLOCK_STATUS limited to the contexts with these wire ids (blockStatusFilter): with
   * NBD_CMD_FLAG_PAYLOAD_LEN the header's length is the payload's, and the payload carries
   * the effect length (64 bits) and the ids (32 bits each).
   */
  static blockStatusFilter(length: number, offset: number, ids: readonly number[], flags?: BlockStatusFlags): Command {
    const cmd = new Command(CMD_BLOCK_STATUS, CMD_FLAG_PAYLOAD_LEN | (flags?.reqOne ? CMD_FLAG_REQ_ONE : 0), offset, length);
    const payload = Buffer.alloc(blockStatusFilterSize(ids.length));
    // A bad length is refused by checkCommand before anything is sent; the payload just must not throw.
    encodeBlockStatusFilter(payload, 0, Number.isSafeInteger(length) && length >= 0 ? length : 0, ids);
    cmd.data = payload;
    return cmd;
  }

  static disconnect(): Command {
    return new Command(CMD_DISC, 0, 0, 0);
  }

  /** Settles the promise once the server has answered (or the request failed before it left). */
  settle(): void {
    if (this.chunkWaits !== null) {
      void awaitChunkCallbacks(this).then(() => this.settle());
      return;
    }
    if (this.error) {
      this.reject(this.error);
    } else if (this.type === CMD_READ && this.seen < this.length) {
      this.reject(new NbdError('EIO', `pread: server sent only ${this.seen} of ${this.length} bytes without an error`));
    } else {
      this.resolve(this.type === CMD_BLOCK_STATUS ? this.extents : this.take !== undefined ? this.data ?? this.take() : undefined);
    }
  }
}
