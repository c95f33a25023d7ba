// Incremental parser of transmission-phase replies. It consumes socket chunks as they come
// (no concatenation), copies read payloads straight into the caller's buffer, reuses one
// header buffer, and throws NbdError(EPROTO) on any protocol violation.
import {
  CMD_BLOCK_STATUS, CMD_READ, EXTENDED_REPLY_SIZE, MAX_STRING, SIMPLE_REPLY_SIZE, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR_OFFSET, REPLY_TYPE_FLAG_ERROR, REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
} from '../protocol/constants.js';
import { NbdError, codeFromWire } from '../protocol/errors.js';
import { readU64 } from '../protocol/bytes.js';
import { decodeBlockStatus, decodeErrorChunk, decodeOffsetHole, type Hole } from '../protocol/chunks.js';
import { decodeReplyHeader, newReplyHeader, replyHeaderSize } from '../protocol/replies.js';
import { commandName, type Command } from './command.js';
import { processLog, type ConnectionLog } from './logger.js';
import { deliverChunk } from './read-chunks.js';
import type { StatsCounter } from './stats.js';
import type { Extent } from './types.js';

export interface ReplySink {
  find(cookie: number): Command | undefined;
  finish(cmd: Command): void;
  /**
   * True when a READ of at least MIN_DIRECT_READ bytes awaits its reply: the next reply
   * may then carry a big payload, worth reading its header (and data offset) on its own.
   */
  bigReadsPending?(): boolean;
}

export interface ReplyMode {
  structured: boolean;
  extended: boolean;
  /** Negotiated meta contexts, wire id -> name. */
  contexts: Map<number, string>;
}

const S_HEADER = 0;
const S_DATA = 1;
const S_PAYLOAD = 2;

/**
 * READs of at least this many bytes are "big": while only big READs are pending, replies
 * are read header first so their payloads can land in place (see directTarget).
 */
export const MIN_DIRECT_READ = 64 * 1024;
/**
 * Payload bytes still to come, at least this many, are received straight into the caller's
 * buffer; a shorter tail goes through the shared receive buffer, sharing one read with the
 * replies queued behind it (a copy of a few KiB costs less than another read).
 */
const MIN_DIRECT_TAIL = 8 * 1024;

/** Servers should send at most 2^20 extents per chunk; allow the 64-bit form of that and some. */
const MAX_BLOCK_STATUS_PAYLOAD = 8 + 16 * (1 << 20) + 16;
const MAX_ERROR_PAYLOAD = 6 + 0xffff + 8;

/** A READ's destination, taken from the caller now if it has none yet (see Command.take). */
function readBuffer(cmd: Command): Uint8Array {
  if (cmd.data !== null) return cmd.data;
  const buf = cmd.take!();
  if (buf.length < cmd.length) throw new NbdError('EINVAL', `pread: buffer of ${buf.length} bytes for a ${cmd.length}-byte read`);
  cmd.data = buf;
  return buf;
}

/**
 * Counts [at, at+n) of a READ as answered. Chunks must not overlap (else a read could count
 * as complete with a gap the caller never got data for), so one that does is a violation.
 */
function cover(cmd: Command, at: number, n: number): void {
  if (cmd.covered === null && at === cmd.seen) {
    cmd.seen += n;
    return;
  }
  const r = (cmd.covered ??= cmd.seen > 0 ? [0, cmd.seen] : []);
  const end = at + n;
  let i = 0;
  while (i < r.length && r[i + 1]! <= at) i += 2;
  if (i < r.length && r[i]! < end) {
    throw violation(`${commandName(cmd.type)} chunks overlap at [${at}, +${n}) of the request (cookie ${cmd.cookie})`);
  }
  r.splice(i, 0, at, end);
  cmd.seen += n;
}

function violation(message: string): NbdError {
  return new NbdError('EPROTO', `protocol error: ${message}`);
}

export class ReplyReader {
  private readonly sink: ReplySink;
  private readonly mode: ReplyMode;
  private state = S_HEADER;
  private readonly hdr = newReplyHeader();
  private readonly hdrBuf = Buffer.alloc(EXTENDED_REPLY_SIZE);
  /**
   * Target of the read that starts a reply while big READs are pending: the chunk header
   * plus OFFSET_DATA's 8-byte offset, so one read() covers both. Bytes past a shorter reply
   * (NONE, simple, ...) belong to the next one; feed() treats them like any other bytes.
   */
  private readonly lead: Buffer;
  private hdrHave = 0;
  private hdrNeed: number;
  private cmd: Command | null = null;
  private simple = false;
  private chunkType = 0;
  private chunkFlags = 0;
  private chunkLength = 0;
  /** S_DATA: where the bytes go and how many are left. */
  private dst: Uint8Array | null = null;
  private dstOff = 0;
  /** Where in `dst` the data being received started (a chunk callback is told where it lies). */
  private dataAt = 0;
  private remaining = 0;
  /** S_PAYLOAD: non-data chunk payloads (and OFFSET_DATA's 8-byte offset) gather here. */
  private scratch = Buffer.alloc(4096);
  private scratchHave = 0;
  private scratchNeed = 0;
  private readonly hole: Hole = { offset: 0, size: 0 };

  constructor(
    sink: ReplySink, mode: ReplyMode, private readonly stats: StatsCounter,
    private readonly log: ConnectionLog = processLog,
  ) {
    this.sink = sink;
    this.mode = mode;
    this.hdrNeed = mode.extended ? EXTENDED_REPLY_SIZE : 4;
    this.lead = Buffer.alloc(mode.extended ? EXTENDED_REPLY_SIZE + 8 : mode.structured ? 20 + 8 : 16);
  }

  /** True when a reply has started but not finished (EOF now would cut it). */
  get midReply(): boolean {
    return this.state !== S_HEADER || this.hdrHave > 0;
  }

  /**
   * Where the next socket read should land: the unfilled rest of the read payload being
   * received, when that is big enough, so the kernel copies it into the caller's buffer and
   * we copy nothing. Exactly the payload's remaining length, so a read can never run into
   * the next reply. Undefined means: use the shared receive buffer.
   */
  directTarget(): Uint8Array | undefined {
    if (this.state === S_DATA) {
      if (this.remaining < MIN_DIRECT_TAIL) return undefined;
      return this.dst!.subarray(this.dstOff, this.dstOff + this.remaining);
    }
    // When a big read payload may be next, read up to it and no further: its header and
    // OFFSET_DATA's 8-byte offset in one small read cost less than copying the 200+ KiB a
    // full-size read would have pulled in behind them. (A shorter reply, e.g. to a
    // BLOCK_STATUS in between, then only costs one more small read.)
    if (this.sink.bigReadsPending?.() !== true) return undefined;
    if (this.state === S_HEADER && this.hdrHave === 0) return this.lead;
    if (this.state === S_PAYLOAD && this.chunkType === REPLY_TYPE_OFFSET_DATA && !this.simple) {
      return this.scratch.subarray(this.scratchHave, this.scratchNeed);
    }
    return undefined;
  }

  feed(chunk: Buffer): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      if (this.state === S_DATA) {
        const k = this.remaining < n - p ? this.remaining : n - p;
        const dst = this.dst!;
        // Bytes the kernel already put in place (directTarget) need no copy.
        if (chunk.buffer !== dst.buffer || chunk.byteOffset + p !== dst.byteOffset + this.dstOff) {
          chunk.copy(dst, this.dstOff, p, p + k);
        }
        p += k;
        this.dstOff += k;
        this.remaining -= k;
        if (this.remaining === 0) this.endChunk();
      } else if (this.state === S_PAYLOAD) {
        const want = this.scratchNeed - this.scratchHave;
        const k = want < n - p ? want : n - p;
        if (chunk.buffer !== this.scratch.buffer || chunk.byteOffset + p !== this.scratch.byteOffset + this.scratchHave) {
          chunk.copy(this.scratch, this.scratchHave, p, p + k);
        }
        p += k;
        this.scratchHave += k;
        if (this.scratchHave === this.scratchNeed) this.payloadDone();
      } else if (this.hdrHave === 0 && n - p >= SIMPLE_REPLY_SIZE && n - p >= replyHeaderSize(chunk.readUInt32BE(p))) {
        // Common case: the whole header is in this chunk; decode it in place.
        p += decodeReplyHeader(chunk, p, this.hdr);
        this.onHeader();
      } else {
        const want = this.hdrNeed - this.hdrHave;
        const k = want < n - p ? want : n - p;
        if (chunk.buffer !== this.hdrBuf.buffer || chunk.byteOffset + p !== this.hdrBuf.byteOffset + this.hdrHave) {
          chunk.copy(this.hdrBuf, this.hdrHave, p, p + k);
        }
        p += k;
        this.hdrHave += k;
        if (this.hdrHave < this.hdrNeed) continue;
        if (this.hdrNeed === 4) {
          this.hdrNeed = replyHeaderSize(this.hdrBuf.readUInt32BE(0));
          continue;
        }
        decodeReplyHeader(this.hdrBuf, 0, this.hdr);
        this.onHeader();
      }
    }
  }

  private onHeader(): void {
    const h = this.hdr;
    this.hdrHave = 0;
    this.hdrNeed = this.mode.extended ? EXTENDED_REPLY_SIZE : 4;
    this.stats.chunksReceived++;
    const cmd = this.sink.find(h.cookie);
    if (!cmd) throw violation(`reply for unknown cookie ${h.cookie}`);
    this.cmd = cmd;
    if (h.kind === 'simple') {
      if (this.mode.extended) throw violation('simple reply after extended headers were negotiated');
      this.simple = true;
      if (this.log.enabled) this.log.debug(() => `reply: ${commandName(cmd.type)} cookie ${h.cookie} error ${h.error}`);
      if (h.error !== 0) {
        cmd.error ??= new NbdError(codeFromWire(h.error), `${commandName(cmd.type)}: server replied ${codeFromWire(h.error)}`);
        this.endChunk();
      } else if (cmd.type === CMD_READ) {
        cmd.seen = cmd.length;
        this.startData(readBuffer(cmd), 0, cmd.length);
      } else {
        this.endChunk();
      }
      return;
    }
    if (h.kind === 'structured' ? !this.mode.structured || this.mode.extended : !this.mode.extended) {
      throw violation(`${h.kind} reply chunk that was not negotiated`);
    }
    this.simple = false;
    this.chunkType = h.type;
    this.chunkFlags = h.flags;
    const len = h.length;
    this.chunkLength = len;
    if (this.log.enabled) this.log.debug(() => `chunk: ${commandName(cmd.type)} cookie ${h.cookie} type ${h.type} flags ${h.flags} length ${len}`);
    switch (h.type) {
      case REPLY_TYPE_OFFSET_DATA:
        this.expectCommand(cmd, CMD_READ, 'OFFSET_DATA');
        if (len < 9) throw violation(`OFFSET_DATA chunk of length ${len}`);
        if (len - 8 > cmd.length) throw violation(`OFFSET_DATA chunk of ${len - 8} bytes is longer than the request (${cmd.length})`);
        this.collect(8);
        return;
      case REPLY_TYPE_OFFSET_HOLE:
        this.expectCommand(cmd, CMD_READ, 'OFFSET_HOLE');
        if (len !== 12 && len !== 16) throw violation(`OFFSET_HOLE chunk of length ${len}`);
        this.collect(len);
        return;
      case REPLY_TYPE_NONE:
        if (len !== 0) throw violation(`NONE chunk with length ${len}`);
        if (!(h.flags & REPLY_FLAG_DONE)) throw violation('NONE chunk without the DONE flag');
        this.endChunk();
        return;
      case REPLY_TYPE_BLOCK_STATUS:
      case REPLY_TYPE_BLOCK_STATUS_EXT:
        this.expectCommand(cmd, CMD_BLOCK_STATUS, 'BLOCK_STATUS');
        if (len > MAX_BLOCK_STATUS_PAYLOAD) throw violation(`BLOCK_STATUS chunk of ${len} bytes is too long`);
        this.collect(len);
        return;
      default:
        if (!(h.type & REPLY_TYPE_FLAG_ERROR)) throw violation(`unknown reply chunk type ${h.type}`);
        if (len < 6 || len > MAX_ERROR_PAYLOAD) throw violation(`error chunk of length ${len}`);
        this.collect(len);
    }
  }

  private expectCommand(cmd: Command, type: number, chunk: string): void {
    if (cmd.type !== type) throw violation(`${chunk} chunk in reply to ${commandName(cmd.type)}`);
  }

  private startData(dst: Uint8Array, at: number, length: number): void {
    if (length === 0) {
      this.endChunk();
      return;
    }
    this.dst = dst;
    this.dstOff = at;
    this.dataAt = at;
    this.remaining = length;
    this.state = S_DATA;
  }

  private collect(n: number): void {
    if (this.scratch.length < n) this.scratch = Buffer.alloc(Math.max(n, this.scratch.length * 2));
    this.scratchHave = 0;
    this.scratchNeed = n;
    this.state = S_PAYLOAD;
    if (n === 0) this.payloadDone();
  }

  private payloadDone(): void {
    const cmd = this.cmd!;
    const s = this.scratch;
    const len = this.chunkLength;
    switch (this.chunkType) {
      case REPLY_TYPE_OFFSET_DATA: {
        const offset = readU64(s, 0);
        const dlen = len - 8;
        if (offset < cmd.offset || offset + dlen > cmd.offset + cmd.length) {
          throw violation(`OFFSET_DATA [${offset}, +${dlen}) lies outside the request [${cmd.offset}, +${cmd.length})`);
        }
        cover(cmd, offset - cmd.offset, dlen);
        this.startData(readBuffer(cmd), offset - cmd.offset, dlen);
        return;
      }
      case REPLY_TYPE_OFFSET_HOLE: {
        const hole = decodeOffsetHole(s, 0, len, this.hole);
        if (hole.offset < cmd.offset || hole.offset + hole.size > cmd.offset + cmd.length) {
          throw violation(`OFFSET_HOLE [${hole.offset}, +${hole.size}) lies outside the request [${cmd.offset}, +${cmd.length})`);
        }
        const at = hole.offset - cmd.offset;
        cover(cmd, at, hole.size);
        const buf = readBuffer(cmd);
        buf.fill(0, at, at + hole.size);
        if (cmd.onChunk !== undefined) deliverChunk(cmd, 'hole', hole.offset, buf.subarray(at, at + hole.size));
        break;
      }
      case REPLY_TYPE_BLOCK_STATUS:
      case REPLY_TYPE_BLOCK_STATUS_EXT: {
        const bs = decodeBlockStatus(s, 0, len, this.chunkType === REPLY_TYPE_BLOCK_STATUS_EXT);
        const name = this.mode.contexts.get(bs.contextId);
        if (name === undefined) throw violation(`block status for unknown meta context id ${bs.contextId}`);
        cmd.extents ??= new Map();
        cmd.extents.set(name, bs.extents as Extent[]);
        break;
      }
      default: {
        const e = decodeErrorChunk(s, 0, len, this.chunkType === REPLY_TYPE_ERROR_OFFSET);
        if (e.error === 0) throw violation('error chunk with error value 0');
        if (e.message.length > MAX_STRING) throw violation('error message longer than 4096 bytes');
        // A read's error offset names a byte of the request; one outside it is a broken server.
        if (e.offset !== undefined && cmd.type === CMD_READ && (e.offset < cmd.offset || e.offset >= cmd.offset + cmd.length)) {
          throw violation(`ERROR_OFFSET at ${e.offset} lies outside the request [${cmd.offset}, +${cmd.length})`);
        }
        const code = codeFromWire(e.error);
        const where = e.offset !== undefined ? ` at offset ${e.offset}` : '';
        const err = new NbdError(code, `${commandName(cmd.type)}: server replied ${code}${where}${e.message ? `: ${e.message}` : ''}`,
          e.message ? { serverMessage: e.message } : undefined);
        // As libnbd: only an error tied to an offset is a chunk the callback sees (before the
        // server's error is recorded, so a failing callback may choose the read's code).
        if (cmd.onChunk !== undefined && e.offset !== undefined && cmd.type === CMD_READ) {
          deliverChunk(cmd, 'error', e.offset, readBuffer(cmd).subarray(0, 0), err);
        }
        cmd.error ??= err;
      }
    }
    this.endChunk();
  }

  /** A data chunk (or a simple reply's payload), if one just ended, reaches a structured read's callback. */
  private dataChunkDone(cmd: Command): void {
    const dst = this.dst;
    if (dst !== null) deliverChunk(cmd, 'data', cmd.offset + this.dataAt, dst.subarray(this.dataAt, this.dstOff));
  }

  private endChunk(): void {
    this.state = S_HEADER;
    const cmd = this.cmd!;
    if (cmd.onChunk !== undefined) this.dataChunkDone(cmd);
    this.dst = null;
    if (this.simple || this.chunkFlags & REPLY_FLAG_DONE) {
      this.cmd = null;
      this.sink.finish(cmd);
    }
  }
}
