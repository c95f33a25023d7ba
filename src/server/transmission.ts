// The transmission phase of one connection: requests in, commands run concurrently against the
// backend, replies out in completion order. Every reply is written with one synchronous
// sequence of writes, so replies never interleave on the wire even though commands overlap.
import type { Duplex } from 'node:stream';
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES,
  FLAG_SEND_FAST_ZERO, FLAG_SEND_FUA, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT,
  REPLY_TYPE_ERROR, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE, STATE_ZERO, CONTEXT_BASE_ALLOCATION,
} from '../protocol/constants.js';
import { NbdError, wireFromCode, type ErrnoCode } from '../protocol/errors.js';
import { encodeBlockStatus, encodeErrorChunk, errorChunkSize } from '../protocol/chunks.js';
import { encodeContextsReply } from './block-status-reply.js';
import type { Backend, Extent } from './backends/types.js';
import type { BufferPool } from './buffer-pool.js';
import { FaultInjector, type FaultKind } from './faults.js';
import type { Negotiated } from './negotiate.js';
import { MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES, MAX_PAYLOAD, type SessionConfig } from './options.js';
import { RequestParser, type ParsedRequest } from './request-parser.js';
import { ReplyStyle, chunkHeaderSize, putChunkHeader, putSimpleReply, putU64 } from './wire.js';

/** Most extents one block status reply carries (the client asks again for the rest). */
const MAX_EXTENTS_PER_REPLY = 65536;
const U32_MAX = 0xffff_ffff;
/** Reply bytes queued on the socket beyond which we stop taking new requests. */
const MAX_QUEUED_REPLY_BYTES = 32 * 1024 * 1024;
/** Read reply bytes we build ahead of what the socket has taken. */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;

interface Rejection {
  code: ErrnoCode;
  message: string;
}

const KIND_OF: Record<number, FaultKind> = {
  [CMD_READ]: 'read', [CMD_WRITE]: 'write', [CMD_WRITE_ZEROES]: 'zero', [CMD_TRIM]: 'trim',
  [CMD_FLUSH]: 'flush', [CMD_CACHE]: 'cache', [CMD_BLOCK_STATUS]: 'extents',
};

const COMMAND_NAMES: Record<number, string> = {
  [CMD_READ]: 'read', [CMD_WRITE]: 'write', [CMD_DISC]: 'disconnect', [CMD_FLUSH]: 'flush', [CMD_TRIM]: 'trim',
  [CMD_CACHE]: 'cache', [CMD_WRITE_ZEROES]: 'write zeroes', [CMD_BLOCK_STATUS]: 'block status',
};

export class Transmission {
  private readonly stream: Duplex;
  private readonly backend: Backend;
  private readonly style: ReplyStyle;
  private readonly parser: RequestParser;
  private readonly faults: FaultInjector;
  private readonly size: number;
  private readonly writable: boolean;
  private inFlight = 0;
  /** Commands received and validated but not started (see pump). */
  private readonly waiting: ParsedRequest[] = [];
  private waitingHead = 0;
  /** Bytes of read replies started but not yet handed to the socket. */
  private unsentReadBytes = 0;
  /** WRITE payloads held and READ replies being built by the commands in flight. */
  private inFlightBytes = 0;
  private disconnecting = false;
  private dead = false;
  private inputPaused = false;
  private waitingDrain = false;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((resolve) => { this.resolveDone = resolve; });

  constructor(
    private readonly n: Negotiated,
    private readonly config: SessionConfig,
    private readonly pool: BufferPool,
  ) {
    this.stream = n.stream;
    this.backend = n.export.backend;
    this.style = n.style;
    this.size = this.backend.size;
    this.writable = !n.export.readOnly && this.backend.writable;
    this.faults = new FaultInjector(config.faults);
    this.parser = new RequestParser(this.style === ReplyStyle.Extended, {
      keepPayload: (req) => this.validate(req) === undefined,
      request: (req) => this.onRequest(req),
      violation: (message) => this.kill(message),
    }, pool);
  }

  start(): void {
    const s = this.stream;
    s.on('data', (chunk: Buffer) => this.push(chunk));
    s.on('end', () => this.onInputEnd());
    s.on('error', (err) => this.kill(`connection error: ${err.message}`));
    s.on('close', () => this.finish());
    s.on('drain', () => {
      this.waitingDrain = false;
      this.updateInput();
    });
    for (const chunk of this.n.leftover) this.push(chunk);
    s.resume();
  }

  /** A bug while parsing must cost this connection only, never the whole server. */
  private push(chunk: Buffer): void {
    try {
      this.parser.push(chunk);
    } catch (err) {
      this.kill(`internal error while parsing a request: ${(err as Error).message}`);
    }
  }

  /** Ends the connection now (server shutdown). */
  destroy(): void {
    this.kill(undefined);
  }

  // ---- requests ----

  private onRequest(req: ParsedRequest): void {
    if (this.dead || this.disconnecting) return this.releasePayload(req);
    if (this.faults.countRequest()) return this.kill('fault injection: disconnect-after reached');
    if (req.type === CMD_DISC) {
      // Soft disconnect: ignore anything after it, finish what is in flight, then close.
      this.disconnecting = true;
      this.parser.stop();
      this.config.log?.('client sent NBD_CMD_DISC');
      this.maybeClose();
      return;
    }
    const bad = this.validate(req);
    if (bad) {
      this.releasePayload(req);
      this.config.log?.(`rejected ${COMMAND_NAMES[req.type] ?? `command ${req.type}`}: ${bad.message}`);
      this.replyError(req, bad.code, bad.message);
      return;
    }
    this.inFlight++;
    this.inFlightBytes += payloadBytes(req);
    this.updateInput();
    this.waiting.push(req);
    this.pump();
  }

  /**
   * Starts waiting commands while the read replies not yet taken by the socket stay under
   * READ_AHEAD_BYTES. Building replies just ahead of the socket, not for every pipelined request
   * at once, keeps the buffers we fill and the kernel copies from in cache, and the pool small.
   */
  private pump(): void {
    while (this.waitingHead < this.waiting.length && !this.dead) {
      const req = this.waiting[this.waitingHead]!;
      const cost = req.type === CMD_READ ? req.length : 0;
      if (cost > 0 && this.unsentReadBytes > 0 && this.unsentReadBytes + cost > READ_AHEAD_BYTES) break;
      this.waiting[this.waitingHead++] = undefined as unknown as ParsedRequest;
      this.unsentReadBytes += cost;
      req.readCost = cost;
      this.execute(req).then(
        () => this.completed(req),
        (err: unknown) => {
          const e = err instanceof NbdError ? err : new NbdError('EIO', (err as Error)?.message ?? String(err));
          this.replyError(req, e.code, e.message);
          this.readFlushed(req);
          this.completed(req);
        },
      );
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting.length = 0;
      this.waitingHead = 0;
    }
  }

  /** The socket took a read reply (or it failed): room to start the next reads. */
  private readFlushed(req: ParsedRequest): void {
    if (req.readCost === 0) return;
    this.unsentReadBytes -= req.readCost;
    req.readCost = 0;
    this.pump();
  }

  private completed(req: ParsedRequest): void {
    this.releasePayload(req);
    this.inFlight--;
    this.inFlightBytes -= payloadBytes(req);
    this.updateInput();
    this.maybeClose();
  }

  /** What is wrong with a request, judged from its header (payload not needed). */
  private validate(req: ParsedRequest): Rejection | undefined {
    const { type, flags, offset, length } = req;
    const tflags = this.n.transmissionFlags;
    let allowed = (tflags & FLAG_SEND_FUA) !== 0 ? CMD_FLAG_FUA : 0;
    switch (type) {
      case CMD_READ: if (this.style !== ReplyStyle.Simple) allowed |= CMD_FLAG_DF; break;
      case CMD_WRITE: if (this.style === ReplyStyle.Extended) allowed |= CMD_FLAG_PAYLOAD_LEN; break;
      case CMD_WRITE_ZEROES:
        allowed |= CMD_FLAG_NO_HOLE;
        if ((tflags & FLAG_SEND_FAST_ZERO) !== 0) allowed |= CMD_FLAG_FAST_ZERO;
        break;
      case CMD_BLOCK_STATUS: allowed |= CMD_FLAG_REQ_ONE; break;
      case CMD_FLUSH: case CMD_TRIM: case CMD_CACHE: break;
      default: return { code: 'EINVAL', message: `unknown command ${type}` };
    }
    if ((flags & ~allowed) !== 0) return { code: 'EINVAL', message: `invalid flags 0x${flags.toString(16)} for ${COMMAND_NAMES[type]}` };

    const isWrite = type === CMD_WRITE || type === CMD_WRITE_ZEROES || type === CMD_TRIM;
    if (isWrite && !this.writable) return { code: 'EPERM', message: 'the export is read-only' };
    if (type === CMD_TRIM && !this.backend.canTrim) return { code: 'EINVAL', message: 'trim is not supported' };
    if (type === CMD_WRITE_ZEROES && !this.backend.canZero) return { code: 'EINVAL', message: 'write zeroes is not supported' };
    if (type === CMD_FLUSH) {
      if (offset !== 0 || length !== 0) return { code: 'EINVAL', message: 'flush must have offset and length 0' };
      return undefined;
    }
    if (type === CMD_BLOCK_STATUS) {
      if (this.n.metaContexts.length === 0) return { code: 'EINVAL', message: 'block status without a negotiated meta context' };
      if (length === 0) return { code: 'EINVAL', message: 'block status of length 0' };
    }
    if (offset > this.size || length > this.size - offset) {
      const code: ErrnoCode = type === CMD_WRITE || type === CMD_WRITE_ZEROES ? 'ENOSPC' : 'EINVAL';
      return { code, message: `request [${offset}, +${length}) is beyond the end of the export (${this.size} bytes)` };
    }
    if ((type === CMD_READ || type === CMD_WRITE) && length > MAX_PAYLOAD) {
      // With simple replies a client must respect the limit; with structured ones the spec
      // lets a server refuse big reads with EOVERFLOW so the client retries smaller.
      const code: ErrnoCode = type === CMD_READ && this.style === ReplyStyle.Simple ? 'EINVAL' : 'EOVERFLOW';
      return { code, message: `${COMMAND_NAMES[type]} of ${length} bytes exceeds the maximum payload ${MAX_PAYLOAD}` };
    }
    return undefined;
  }

  private async execute(req: ParsedRequest): Promise<void> {
    const kind = KIND_OF[req.type]!;
    if (this.faults.active) {
      const delay = this.faults.delayFor(kind);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const injected = this.faults.errorFor(kind);
      if (injected) throw injected;
    }
    const b = this.backend;
    const fua = (req.flags & CMD_FLAG_FUA) !== 0;
    switch (req.type) {
      case CMD_READ:
        return this.read(req);
      case CMD_WRITE:
        if (req.length > 0) await b.write(req.payload!, req.offset, fua);
        return this.replyOk(req);
      case CMD_WRITE_ZEROES:
        if ((req.flags & CMD_FLAG_FAST_ZERO) !== 0 && !b.canFastZero) throw new NbdError('ENOTSUP', 'zeroing is not faster than writing on this export');
        if (req.length > 0) {
          await b.zero(req.offset, req.length, { noHole: (req.flags & CMD_FLAG_NO_HOLE) !== 0, fua, fast: (req.flags & CMD_FLAG_FAST_ZERO) !== 0 });
        }
        return this.replyOk(req);
      case CMD_TRIM:
        if (req.length > 0) await b.trim(req.offset, req.length, fua);
        return this.replyOk(req);
      case CMD_FLUSH:
        if (this.writable && b.canFlush) await b.flush();
        return this.replyOk(req);
      case CMD_CACHE:
        if (req.length > 0) await b.cache(req.offset, req.length);
        return this.replyOk(req);
      case CMD_BLOCK_STATUS:
        return this.blockStatus(req);
    }
  }

  // ---- commands with payload replies ----

  private async read(req: ParsedRequest): Promise<void> {
    const { offset, length } = req;
    const b = this.backend;
    if (this.style === ReplyStyle.Simple) {
      const total = 16 + length;
      const buf = this.pool.get(total);
      try {
        if (length > 0) await b.read(buf.subarray(16, total), offset);
      } catch (err) {
        this.pool.release(buf);
        throw err;
      }
      putSimpleReply(buf, 0, 0, req.cookie);
      this.send(buf, total, buf, req);
      return;
    }
    if (length === 0) return this.replyNone(req);
    const h = chunkHeaderSize(this.style);
    const fragments = b.sparse && (req.flags & CMD_FLAG_DF) === 0 ? await this.readLayout(offset, length) : undefined;
    if (!fragments) {
      const total = h + 8 + length;
      const buf = this.pool.get(total);
      try {
        await b.read(buf.subarray(h + 8, total), offset);
      } catch (err) {
        this.pool.release(buf);
        throw err;
      }
      putChunkHeader(buf, 0, this.style, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, offset, 8 + length);
      putU64(buf, h, offset);
      this.send(buf, total, buf, req);
      return;
    }
    // Holes go out as OFFSET_HOLE chunks (12 bytes each) instead of zeroes.
    let total = 0;
    for (const f of fragments) total += f.flags & STATE_ZERO ? h + 12 : h + 8 + f.length;
    const buf = this.pool.get(total);
    let p = 0;
    let pos = offset;
    try {
      for (let i = 0; i < fragments.length; i++) {
        const f = fragments[i]!;
        const done = i === fragments.length - 1 ? REPLY_FLAG_DONE : 0;
        if (f.flags & STATE_ZERO) {
          putChunkHeader(buf, p, this.style, done, REPLY_TYPE_OFFSET_HOLE, req.cookie, offset, 12);
          putU64(buf, p + h, pos);
          buf.writeUInt32BE(f.length, p + h + 8);
          p += h + 12;
        } else {
          putChunkHeader(buf, p, this.style, done, REPLY_TYPE_OFFSET_DATA, req.cookie, offset, 8 + f.length);
          putU64(buf, p + h, pos);
          await b.read(buf.subarray(p + h + 8, p + h + 8 + f.length), pos);
          p += h + 8 + f.length;
        }
        pos += f.length;
      }
    } catch (err) {
      this.pool.release(buf);
      throw err;
    }
    this.send(buf, total, buf, req);
  }

  /**
   * Splits a read into data and zero runs, or returns undefined when it is all data (the
   * common case, sent as one chunk). Adjacent data runs are merged.
   */
  private async readLayout(offset: number, length: number): Promise<Extent[] | undefined> {
    const out: Extent[] = [];
    let pos = offset;
    const end = offset + length;
    let sawZero = false;
    while (pos < end) {
      const extents = await this.backend.extents(pos, end - pos);
      if (extents.length === 0) break;
      for (const e of extents) {
        const len = Math.min(e.length, end - pos);
        if (len <= 0) break;
        const zero = (e.flags & STATE_ZERO) !== 0 ? STATE_ZERO : 0;
        if (zero) sawZero = true;
        const last = out[out.length - 1];
        if (last && last.flags === zero) last.length += len;
        else out.push({ length: len, flags: zero });
        pos += len;
      }
    }
    if (pos < end) {
      // A backend that stopped short: the rest is sent as data, which is always correct.
      const last = out[out.length - 1];
      if (last && last.flags === 0) last.length += end - pos;
      else out.push({ length: end - pos, flags: 0 });
    }
    return sawZero ? out : undefined;
  }

  private async blockStatus(req: ParsedRequest): Promise<void> {
    const { offset, length } = req;
    const reqOne = (req.flags & CMD_FLAG_REQ_ONE) !== 0;
    if (this.backend.blockStatus) {
      const extents = await this.backend.blockStatus(offset, length, this.n.metaContexts, reqOne);
      const reply = encodeContextsReply(this.style, req.cookie, offset, this.n.metaContexts, extents, reqOne);
      if (!reply) throw new NbdError('EIO', 'the backend returned no extents');
      return this.send(reply, reply.length, undefined);
    }
    const extended = this.style === ReplyStyle.Extended;
    const end = offset + length;
    const list: Extent[] = [];
    let pos = offset;
    while (pos < end && list.length < MAX_EXTENTS_PER_REPLY) {
      const got = await this.backend.extents(pos, end - pos);
      if (got.length === 0) break;
      for (const e of got) {
        // Never describe past what was asked: lengths then always fit the reply's fields.
        const len = Math.min(e.length, end - pos, extended ? Number.MAX_SAFE_INTEGER : U32_MAX);
        if (len <= 0) break;
        const last = list[list.length - 1];
        if (last && last.flags === e.flags && (extended || last.length + len <= U32_MAX)) last.length += len;
        else list.push({ length: len, flags: e.flags });
        pos += len;
        if (pos >= end) break;
      }
      if (reqOne) break;
    }
    if (list.length === 0) throw new NbdError('EIO', 'backend returned no extents');
    if (reqOne) list.length = 1;
    const h = chunkHeaderSize(this.style);
    const payload = extended ? 8 + 16 * list.length : 4 + 8 * list.length;
    const buf = Buffer.allocUnsafe(h + payload);
    putChunkHeader(buf, 0, this.style, REPLY_FLAG_DONE, extended ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS, req.cookie, offset, payload);
    encodeBlockStatus(buf, h, this.n.metaContexts.indexOf(CONTEXT_BASE_ALLOCATION) + 1, list, extended);
    this.send(buf, buf.length, undefined);
  }

  // ---- replies ----

  private replyOk(req: ParsedRequest): void {
    if (this.style === ReplyStyle.Extended) return this.replyNone(req);
    // Simple replies are allowed for payload-less successes even with structured replies.
    const buf = Buffer.allocUnsafe(16);
    putSimpleReply(buf, 0, 0, req.cookie);
    this.send(buf, 16, undefined);
  }

  private replyNone(req: ParsedRequest): void {
    const h = chunkHeaderSize(this.style);
    const buf = Buffer.allocUnsafe(h);
    putChunkHeader(buf, 0, this.style, REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.cookie, req.offset, 0);
    this.send(buf, h, undefined);
  }

  private replyError(req: ParsedRequest, code: ErrnoCode, message: string): void {
    const wire = wireFromCode(code);
    if (this.style === ReplyStyle.Simple) {
      const buf = Buffer.allocUnsafe(16);
      putSimpleReply(buf, 0, wire, req.cookie);
      this.send(buf, 16, undefined);
      return;
    }
    const text = message.length > 1024 ? message.slice(0, 1024) : message;
    const h = chunkHeaderSize(this.style);
    const payload = errorChunkSize(text, false);
    const buf = Buffer.allocUnsafe(h + payload);
    putChunkHeader(buf, 0, this.style, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, req.offset, payload);
    encodeErrorChunk(buf, h, wire, text);
    this.send(buf, buf.length, undefined);
  }

  private send(buf: Buffer, length: number, pooled: Buffer | undefined, read?: ParsedRequest): void {
    if (this.dead || this.stream.destroyed || !this.stream.writable) {
      if (pooled) this.pool.release(pooled);
      if (read) this.readFlushed(read);
      return;
    }
    const view = length === buf.length ? buf : buf.subarray(0, length);
    if (pooled) {
      this.stream.write(view, () => {
        this.pool.release(pooled);
        if (read) this.readFlushed(read);
      });
    } else {
      this.stream.write(view);
    }
    // A socket's high-water mark (16 KiB) is below one read reply, so write() says "full" almost
    // always; stop reading new requests only once a real backlog of replies has built up.
    if (this.stream.writableLength > MAX_QUEUED_REPLY_BYTES && !this.waitingDrain) {
      this.waitingDrain = true;
      this.updateInput();
    }
  }

  private releasePayload(req: ParsedRequest): void {
    if (req.pooled) {
      this.pool.release(req.pooled);
      req.pooled = undefined;
    }
    req.payload = undefined;
  }

  // ---- flow control and shutdown ----

  /** Stop reading while too much is in flight or the client is not reading its replies. */
  private updateInput(): void {
    const shouldPause = this.inFlight >= MAX_IN_FLIGHT || this.inFlightBytes >= MAX_IN_FLIGHT_BYTES || this.waitingDrain;
    if (shouldPause && !this.inputPaused) {
      this.inputPaused = true;
      this.stream.pause();
    } else if (!shouldPause && this.inputPaused) {
      this.inputPaused = false;
      this.stream.resume();
    }
  }

  private onInputEnd(): void {
    // EOF mid-request is a client that broke off; either way nothing more will come.
    if (this.parser.midRequest) this.config.log?.('client closed the connection in the middle of a request');
    this.parser.stop();
    this.disconnecting = true;
    this.maybeClose();
  }

  private maybeClose(): void {
    if (!this.disconnecting || this.inFlight > 0 || this.dead) return;
    this.dead = true;
    // end() flushes queued replies first; destroy after, so a client that half-closed gets its data.
    this.stream.end(() => this.stream.destroy());
    setTimeout(() => this.stream.destroy(), 5000).unref();
  }

  private kill(message: string | undefined): void {
    if (message) this.config.log?.(`dropping connection: ${message}`);
    this.parser.stop();
    this.dead = true;
    this.stream.destroy();
    this.finish();
  }

  private finish(): void {
    this.dead = true;
    this.resolveDone();
  }
}

/** Memory a command holds while in flight: its write payload or its read reply. */
function payloadBytes(req: ParsedRequest): number {
  return req.type === CMD_READ || req.type === CMD_WRITE ? req.length : 0;
}
