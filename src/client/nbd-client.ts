// One NBD connection: negotiation, then many commands in flight with replies matched by cookie.
// States: created -> connecting -> negotiating -> (option-mode ->) ready -> closed, or dead
// when the transport fails or the server breaks the protocol (every pending and later command
// then fails with the error that killed it).
import type { Duplex } from 'node:stream';
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, EXTENDED_REQUEST_SIZE,
} from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import { encodeCompactRequest, encodeExtendedRequest } from '../protocol/requests.js';
import type { ClientTlsOptions } from '../tls/types.js';
import { commandName, type Command } from './command.js';
import { debug, debugEnabled } from './debug.js';
import type { FileSender } from './file-sender.js';
import { HandshakeIO } from './handshake-io.js';
import { DEFAULT_META_CONTEXTS, Negotiator } from './negotiate.js';
import { MIN_DIRECT_READ, ReplyReader } from './reply-reader.js';
import type { Transport } from './transport.js';
import type {
  BlockStatusFlags, BlockStatusResult, CommandFlags, ConnectionInfo, ExportInfo, ExportListing, ReadFlags,
  ZeroFlags,
} from './types.js';
import { connectionUri } from './uri.js';

export type ClientState = 'created' | 'connecting' | 'negotiating' | 'option-mode' | 'ready' | 'dead' | 'closed';

export interface ClientOptions {
  /** Export to open (default ''; a URI's path sets it too). */
  exportName?: string;
  tls?: ClientTlsOptions;
  /** Stop after the greeting (and TLS / structured replies) so the caller can send options. */
  optMode?: boolean;
  /** Ask for NBD_OPT_EXTENDED_HEADERS (default true; falls back when unsupported). */
  requestExtendedHeaders?: boolean;
  /** Ask for NBD_OPT_STRUCTURED_REPLY when extended headers are off (default true). */
  requestStructuredReplies?: boolean;
  /** Meta contexts for SET_META_CONTEXT (default ['base:allocation']; [] for none). */
  metaContexts?: string[];
  /** Ask for canonical name and description with NBD_OPT_GO (default true). */
  fullInfo?: boolean;
  /** Commands on the wire at once; more wait in a queue (default 64). */
  maxInFlight?: number;
  /**
   * Hold requests back until this many can leave in one socket write, as long as more than
   * REQUEST_LOW_WATER others are still being served (default 1: every request leaves at
   * once). Each write wakes the server, so deep copy queues send theirs in groups.
   */
  requestBatch?: number;
  /**
   * Give up when the server has not finished the handshake after this many ms (default
   * 30000; 0 = wait forever). A server that accepts but never speaks would otherwise hang us.
   */
  handshakeTimeoutMs?: number;
}

/**
 * pwriteFromFile's machinery, loaded on first use: it brings koffi, whose start-up cost
 * connections that never write from a file (nbdinfo, reads) must not pay.
 */
let fileSends: typeof import('./file-sender.js') | undefined;

const U32_MAX = 0xffffffff;
/** With requestBatch > 1, held requests leave at once when the server has this few left. */
const REQUEST_LOW_WATER = 16;

export class NbdClient {
  private _state: ClientState = 'created';
  private transport: Transport | null = null;
  private neg: Negotiator | null = null;
  private stream: Duplex | null = null;
  private reader: ReplyReader | null = null;
  private info: ExportInfo | undefined;
  private conn: ConnectionInfo = {
    protocol: 'newstyle-fixed', tls: false, structuredReplies: false, extendedHeaders: false, metaContexts: [],
  };
  private readonly opts: ClientOptions;
  private readonly maxInFlight: number;
  private readonly inflight = new Map<number, Command>();
  /** READs of MIN_DIRECT_READ bytes or more among `inflight` (see ReplySink.bigReadsPending). */
  private bigReads = 0;
  private queue: Command[] = [];
  private queueHead = 0;
  private nextCookie = 1;
  private deadError: NbdError | null = null;
  /**
   * Requests sent but not yet written to the stream (see requestBatch). They wait here, not
   * in a corked stream: Node leaves everything it buffered behind a write in progress until
   * the stream is uncorked, so a stream corked across ticks could also hold requests we
   * had already released, and wait forever for their replies.
   */
  private held: Command[] = [];
  private flushScheduled = false;
  private readonly requestBatch: number;
  /** onSent callbacks of queued WRITE payloads, in send order (socket writes complete in order). */
  private sentCallbacks: Array<(() => void) | undefined> = [];
  private sentHead = 0;
  private drainWaiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  /** sendfile path of pwriteFromFile: null = not possible here, undefined = not looked at yet. */
  private fileSender: FileSender | null | undefined;
  /** File WRITEs registered in `inflight` but waiting for room in the socket, in order. */
  private fileBacklog: Array<Command | undefined> = [];
  private fileBacklogHead = 0;
  /** Header of a raw-socket request: the kernel copies it at once, so one buffer serves all. */
  private readonly rawHeader = Buffer.alloc(EXTENDED_REQUEST_SIZE);

  /** Loads what pwriteFromFile needs; until then sendsFromFile is false. */
  static async loadFileSupport(): Promise<void> {
    fileSends ??= await import('./file-sender.js');
  }

  constructor(options: ClientOptions = {}) {
    this.opts = options;
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 64);
    this.requestBatch = Math.max(1, options.requestBatch ?? 1);
  }

  get state(): ClientState {
    return this._state;
  }

  /** Facts about the open export; throws before NBD_OPT_GO / EXPORT_NAME finished. */
  get export(): ExportInfo {
    if (!this.info) throw new NbdError('ENOTCONN', `no export is open (connection is ${this._state})`);
    return this.info;
  }

  get connection(): ConnectionInfo {
    return this.conn;
  }

  /** Commands sent and not yet answered, plus those waiting for a slot. */
  get inFlight(): number {
    return this.inflight.size + this.queue.length - this.queueHead;
  }

  // ---------------------------------------------------------------- handshake

  /** Runs the handshake over an open transport. Used by `connect()`. */
  async start(transport: Transport): Promise<void> {
    if (this._state !== 'created') throw new NbdError('EINVAL', `start: client is already ${this._state}`);
    this.transport = transport;
    this._state = 'negotiating';
    const neg = new Negotiator(new HandshakeIO(transport.stream));
    this.neg = neg;
    const limit = this.opts.handshakeTimeoutMs ?? 30_000;
    const timer = limit > 0
      ? setTimeout(() => neg.io.abort(new NbdError('ETIMEDOUT', `handshake: no answer from the server after ${limit / 1000} s`)), limit)
      : undefined;
    try {
      await neg.greet();
      this.conn.protocol = neg.protocol;
      if (neg.protocol === 'oldstyle') {
        await this.enterTransmission(neg.oldstyleExport!);
        return;
      }
      if (neg.canHaggle) {
        await this.negotiateTls();
        if (this.opts.requestExtendedHeaders ?? true) await neg.extendedHeadersOption();
        if (!neg.structuredReplies && (this.opts.requestStructuredReplies ?? true)) await neg.structuredReplyOption();
        this.syncConnectionInfo();
      }
      if (this.opts.optMode && neg.canHaggle) {
        this._state = 'option-mode';
        return;
      }
      await this.goInternal(this.opts.exportName ?? '');
    } catch (err) {
      await this.fail(err);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async negotiateTls(): Promise<void> {
    const tls = this.opts.tls;
    if (!tls || tls.mode === 'off') return;
    const ok = await this.neg!.startTls(tls);
    if (!ok && tls.mode === 'require') {
      throw new NbdError('EPERM', 'NBD_OPT_STARTTLS: server refused TLS, and TLS is required');
    }
    this.conn.tls = ok;
  }

  private syncConnectionInfo(): void {
    const neg = this.neg!;
    this.conn.protocol = neg.protocol;
    this.conn.tls = neg.tls;
    this.conn.structuredReplies = neg.structuredReplies;
    this.conn.extendedHeaders = neg.extendedHeaders;
    this.conn.metaContexts = [...neg.contexts.values()];
  }

  private async goInternal(exportName: string): Promise<void> {
    const neg = this.neg!;
    const wanted = this.opts.metaContexts ?? DEFAULT_META_CONTEXTS;
    if (neg.canHaggle && neg.structuredReplies && wanted.length > 0 && neg.contexts.size === 0) {
      try {
        await neg.metaContextOption(true, exportName, wanted);
      } catch (err) {
        // A server without meta contexts still serves data; block status will say ENOTSUP.
        if (!(err instanceof NbdError) || err.code === 'EPROTO' || err.code === 'ECONNRESET') throw err;
        debug(() => `SET_META_CONTEXT refused: ${(err as Error).message}`);
      }
    }
    const info = await neg.infoOrGo(true, exportName, this.opts.fullInfo ?? true);
    await this.enterTransmission(info);
  }

  private async enterTransmission(info: ExportInfo): Promise<void> {
    const neg = this.neg!;
    this.info = info;
    this.syncConnectionInfo();
    if (this.transport) this.conn.uri = connectionUri(this.transport.address, info.exportName, neg.tls);
    const leftover = neg.io.detach();
    const stream = neg.io.stream;
    this.stream = stream;
    this.reader = new ReplyReader(
      {
        find: (cookie) => this.inflight.get(cookie),
        finish: (cmd) => this.finish(cmd),
        bigReadsPending: () => this.bigReads > 0,
      },
      { structured: neg.structuredReplies, extended: neg.extendedHeaders, contexts: neg.contexts },
    );
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
    // Read payloads go straight from the kernel into the caller's buffers (one copy, like
    // libnbd's recv into the user buffer) when we own the socket and nothing is layered on it.
    if (this.transport?.setReadTarget && stream === this.transport.stream) {
      const reader = this.reader;
      this.transport.setReadTarget(() => reader.directTarget());
    }
    this._state = 'ready';
    debug(() => `ready: export '${info.exportName}' size ${info.size} flags 0x${info.transmissionFlags.toString(16)}, ` +
      `structured ${neg.structuredReplies}, extended ${neg.extendedHeaders}, contexts [${[...neg.contexts.values()].join(', ')}]`);
    for (const chunk of leftover) this.onData(chunk);
    stream.resume();
  }

  // ---------------------------------------------------------------- option mode

  private optionMode(what: string): Negotiator {
    if (this._state !== 'option-mode') {
      throw this.deadError ?? new NbdError('EINVAL', `${what}: only valid in option mode (connection is ${this._state})`);
    }
    return this.neg!;
  }

  private async guarded<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      // A refused option leaves the connection usable; anything else (EOF, bad magic) kills it.
      if (!(err instanceof NbdError) || !('replyType' in err)) await this.fail(err);
      throw err;
    }
  }

  optList(): Promise<ExportListing[]> {
    const neg = this.optionMode('optList');
    return this.guarded(() => neg.list());
  }

  /** NBD_OPT_INFO for `exportName` (default: the connect option's). */
  optInfo(exportName = this.opts.exportName ?? ''): Promise<ExportInfo> {
    const neg = this.optionMode('optInfo');
    return this.guarded(() => neg.infoOrGo(false, exportName, this.opts.fullInfo ?? true));
  }

  async optListMetaContext(queries: string[] = [], exportName = this.opts.exportName ?? ''): Promise<string[]> {
    const neg = this.optionMode('optListMetaContext');
    const found = await this.guarded(() => neg.metaContextOption(false, exportName, queries));
    return [...found.values()];
  }

  async optSetMetaContext(queries: string[], exportName = this.opts.exportName ?? ''): Promise<string[]> {
    const neg = this.optionMode('optSetMetaContext');
    const found = await this.guarded(() => neg.metaContextOption(true, exportName, queries));
    this.syncConnectionInfo();
    return [...found.values()];
  }

  async optStructuredReply(): Promise<boolean> {
    const neg = this.optionMode('optStructuredReply');
    const ok = await this.guarded(() => neg.structuredReplyOption());
    this.syncConnectionInfo();
    return ok;
  }

  async optExtendedHeaders(): Promise<boolean> {
    const neg = this.optionMode('optExtendedHeaders');
    const ok = await this.guarded(() => neg.extendedHeadersOption());
    this.syncConnectionInfo();
    return ok;
  }

  async optStartTls(options: ClientTlsOptions = this.opts.tls ?? { mode: 'require' }): Promise<boolean> {
    const neg = this.optionMode('optStartTls');
    const ok = await this.guarded(() => neg.startTls(options));
    this.syncConnectionInfo();
    return ok;
  }

  /** Ends option mode: opens `exportName` (default: the connect option's) for transmission. */
  async optGo(exportName = this.opts.exportName ?? ''): Promise<void> {
    this.optionMode('optGo');
    try {
      await this.goInternal(exportName);
    } catch (err) {
      if (!(err instanceof NbdError) || !('replyType' in err)) await this.fail(err);
      throw err;
    }
  }

  /** Ends option mode without opening an export (NBD_OPT_ABORT) and closes the connection. */
  async optAbort(): Promise<void> {
    const neg = this.optionMode('optAbort');
    await neg.abort().catch(() => undefined);
    await this.shutdown('closed');
  }

  // ---------------------------------------------------------------- commands

  pread(buf: Uint8Array, offset: number, flags?: ReadFlags): Promise<void> {
    let f = 0;
    if (flags?.df) f |= CMD_FLAG_DF;
    return this.submit(CMD_READ, f, offset, buf.length, buf) as Promise<void>;
  }

  /**
   * Reads `length` bytes at `offset` into a buffer the client asks `take()` for only when the
   * reply's data starts to arrive (at most once; never when the server answers with an error
   * first), and resolves to that buffer. With many reads in flight, a caller drawing from a
   * last-in first-out pool then keeps reusing the few buffers just released, still in the CPU
   * cache, instead of one cold buffer per pending read.
   */
  preadTake<B extends Uint8Array>(length: number, offset: number, take: () => B, flags?: ReadFlags): Promise<B> {
    let f = 0;
    if (flags?.df) f |= CMD_FLAG_DF;
    return this.submit(CMD_READ, f, offset, length, null, undefined, take) as Promise<B>;
  }

  /**
   * Writes `buf` at `offset`. The buffer must not change until the promise settles or, when
   * `onSent` is given, until `onSent` is called, whichever comes first. `onSent` runs once
   * the payload has been handed to the kernel, usually long before the server's reply (Node
   * reports a batch of writes when all of it is written, so a reply can also come first).
   * Copy loops use it to reuse a buffer while it is still in the CPU cache. `onSent` is not
   * called if the payload never leaves (the promise then rejects).
   */
  pwrite(buf: Uint8Array, offset: number, flags?: CommandFlags, onSent?: () => void): Promise<void> {
    return this.submit(CMD_WRITE, flags?.fua ? CMD_FLAG_FUA : 0, offset, buf.length, buf, onSent) as Promise<void>;
  }

  /**
   * Writes `length` bytes of file `fd` (a regular file or block device) from `fileOffset` at
   * `offset`. On a plain socket this client opened (no TLS) the payload goes from the page
   * cache to the socket with sendfile(2), never through user space; elsewhere it is read
   * into a buffer on this thread and sent as pwrite would. `onSent` as in pwrite. A file
   * shorter than the request rejects with EIO (and, when the header was already on the
   * wire, kills the connection: the request cannot be completed).
   */
  pwriteFromFile(
    fd: number, fileOffset: number, length: number, offset: number, flags?: CommandFlags, onSent?: () => void,
  ): Promise<void> {
    if (!Number.isSafeInteger(fileOffset) || fileOffset < 0 || !Number.isInteger(fd) || fd < 0) {
      return Promise.reject(new NbdError('EINVAL', `pwrite from file: invalid fd ${fd} or file offset ${fileOffset}`));
    }
    if (fileSends === undefined) {
      return NbdClient.loadFileSupport().then(() => this.pwriteFromFile(fd, fileOffset, length, offset, flags, onSent));
    }
    const sender = this.sendsFromFile ? this.fileSender! : null;
    if (sender === null || !sender.enabled) {
      let buf: Buffer;
      try {
        buf = fileSends.readFileRange(fd, fileOffset, length);
      } catch (err) {
        return Promise.reject(err);
      }
      if (sender !== null) sender.copiedBytes += length;
      return this.pwrite(buf, offset, flags, onSent);
    }
    return this.submit(CMD_WRITE, flags?.fua ? CMD_FLAG_FUA : 0, offset, length, null, onSent, undefined, fd, fileOffset) as
      Promise<void>;
  }

  /** True when pwriteFromFile sends payloads with sendfile on this connection. */
  get sendsFromFile(): boolean {
    if (this.fileSender === undefined) {
      if (this._state !== 'ready' || fileSends === undefined) return false;
      const t = this.transport;
      const plain = t !== null && this.stream === t.stream && !this.conn.tls;
      this.fileSender = (plain ? fileSends.FileSender.forStream(this.stream) : undefined) ?? null;
    }
    return this.fileSender !== null && this.fileSender.enabled;
  }

  /** Payload bytes pwriteFromFile sent by sendfile, and those it had to copy through a buffer. */
  get fileSendStats(): { sendfileBytes: number; copiedBytes: number } {
    const s = this.fileSender;
    return { sendfileBytes: s?.sendfileBytes ?? 0, copiedBytes: s?.copiedBytes ?? 0 };
  }

  flush(): Promise<void> {
    return this.submit(CMD_FLUSH, 0, 0, 0, null) as Promise<void>;
  }

  trim(length: number, offset: number, flags?: CommandFlags): Promise<void> {
    return this.submit(CMD_TRIM, flags?.fua ? CMD_FLAG_FUA : 0, offset, length, null) as Promise<void>;
  }

  zero(length: number, offset: number, flags?: ZeroFlags): Promise<void> {
    let f = 0;
    if (flags?.fua) f |= CMD_FLAG_FUA;
    if (flags?.noHole) f |= CMD_FLAG_NO_HOLE;
    if (flags?.fastZero) f |= CMD_FLAG_FAST_ZERO;
    return this.submit(CMD_WRITE_ZEROES, f, offset, length, null) as Promise<void>;
  }

  cache(length: number, offset: number): Promise<void> {
    return this.submit(CMD_CACHE, 0, offset, length, null) as Promise<void>;
  }

  /**
   * Extents per negotiated context from `offset`. Without extended headers a length above
   * 4 GiB is shortened (the answer may stop short anyway, so callers ask again from the end).
   */
  async blockStatus(length: number, offset: number, flags?: BlockStatusFlags): Promise<BlockStatusResult> {
    if (this.info && !this.conn.extendedHeaders && length > U32_MAX) {
      const align = Math.max(this.info.blockSizeMinimum, 1);
      length = U32_MAX - (U32_MAX % align);
    }
    const r = (await this.submit(CMD_BLOCK_STATUS, flags?.reqOne ? CMD_FLAG_REQ_ONE : 0, offset, length, null)) as
      BlockStatusResult | null;
    return r ?? new Map();
  }

  /** Libnbd-style strict checks, before anything is sent. */
  private check(type: number, flags: number, offset: number, length: number): NbdError | null {
    const name = commandName(type);
    if (this._state !== 'ready') {
      return this.deadError ?? new NbdError('ENOTCONN', `${name}: connection is ${this._state}`);
    }
    const info = this.info!;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      return new NbdError('EINVAL', `${name}: invalid offset ${offset} or length ${length}`);
    }
    if (type === CMD_FLUSH) {
      if (!info.canFlush) return new NbdError('ENOTSUP', 'flush: server does not support flush');
      return null;
    }
    if (length === 0) return new NbdError('EINVAL', `${name}: zero-length request`);
    if (offset + length > info.size) {
      return new NbdError('EINVAL', `${name}: request [${offset}, ${offset + length}) is beyond the end of the export (size ${info.size})`);
    }
    const writes = type === CMD_WRITE || type === CMD_TRIM || type === CMD_WRITE_ZEROES;
    if (writes && info.readOnly) return new NbdError('EPERM', `${name}: export is read-only`);
    if (type === CMD_TRIM && !info.canTrim) return new NbdError('ENOTSUP', 'trim: server does not support trim');
    if (type === CMD_WRITE_ZEROES && !info.canZero) return new NbdError('ENOTSUP', 'zero: server does not support write zeroes');
    if (type === CMD_CACHE && !info.canCache) return new NbdError('ENOTSUP', 'cache: server does not support cache');
    if (type === CMD_BLOCK_STATUS && this.neg!.contexts.size === 0) {
      return new NbdError('ENOTSUP', 'block-status: no meta context was negotiated');
    }
    if (flags & CMD_FLAG_FUA && !info.canFua) return new NbdError('EINVAL', `${name}: server does not support FUA`);
    if (flags & CMD_FLAG_DF && !(info.canDf && this.conn.structuredReplies)) {
      return new NbdError('EINVAL', `${name}: server does not support the DF flag`);
    }
    if (flags & CMD_FLAG_FAST_ZERO && !info.canFastZero) return new NbdError('EINVAL', `${name}: server does not support fast zero`);
    if (info.blockSizeFromServer && info.blockSizeMinimum > 1 &&
      (offset % info.blockSizeMinimum !== 0 || length % info.blockSizeMinimum !== 0)) {
      return new NbdError('EINVAL', `${name}: offset ${offset} or length ${length} is not a multiple of the minimum block size ${info.blockSizeMinimum}`);
    }
    if ((type === CMD_READ || type === CMD_WRITE) && length > info.blockSizeMaximum) {
      return new NbdError('ERANGE', `${name}: ${length} bytes exceeds the maximum payload ${info.blockSizeMaximum}`);
    }
    if (!this.conn.extendedHeaders && length > U32_MAX) {
      return new NbdError('ERANGE', `${name}: length ${length} does not fit 32 bits without extended headers`);
    }
    return null;
  }

  private submit(
    type: number, flags: number, offset: number, length: number, data: Uint8Array | null, onSent?: () => void,
    take?: () => Uint8Array, fileFd?: number, fileOffset?: number,
  ): Promise<unknown> {
    const err = this.check(type, flags, offset, length);
    if (err) return Promise.reject(err);
    return new Promise((resolve, reject) => {
      const cmd: Command = {
        cookie: 0, type, flags, offset, length, data, seen: 0, error: null, extents: null, resolve, reject, onSent, take,
        fileFd, fileOffset,
      };
      if (this.inflight.size < this.maxInFlight) this.send(cmd);
      else this.queue.push(cmd);
    });
  }

  private send(cmd: Command): void {
    const cookie = this.nextCookie++;
    cmd.cookie = cookie;
    this.inflight.set(cookie, cmd);
    if (cmd.type === CMD_READ && cmd.length >= MIN_DIRECT_READ) this.bigReads++;
    if (debugEnabled) debug(() => `request: ${commandName(cmd.type)} cookie ${cookie} offset ${cmd.offset} length ${cmd.length} flags 0x${cmd.flags.toString(16)}`);
    if (cmd.fileFd !== undefined) {
      // Later file WRITEs wait behind earlier ones, so they leave in the order they came.
      if (this.fileBacklogHead < this.fileBacklog.length || !this.trySendFromFile(cmd)) this.fileBacklog.push(cmd);
      return;
    }
    // Requests issued in the same tick leave in one writev (or several ticks' worth: requestBatch).
    this.held.push(cmd);
    this.maybeFlush();
  }

  /** Writes the held requests to the stream, in one writev. */
  private readonly flushHeld = (): void => {
    this.flushScheduled = false;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    if (this._state !== 'ready') return;
    const stream = this.stream!;
    stream.cork();
    for (const cmd of held) {
      const hdr = Buffer.allocUnsafe(EXTENDED_REQUEST_SIZE);
      const n = this.encodeHeader(hdr, cmd);
      stream.write(n === hdr.length ? hdr : hdr.subarray(0, n));
      if (cmd.type !== CMD_WRITE) continue;
      if (cmd.onSent === undefined) {
        stream.write(cmd.data!);
      } else {
        this.sentCallbacks.push(cmd.onSent);
        cmd.onSent = undefined;
        stream.write(cmd.data!, this.payloadSent);
      }
    }
    stream.uncork();
  };

  private encodeHeader(hdr: Buffer, cmd: Command): number {
    return this.conn.extendedHeaders
      ? encodeExtendedRequest(hdr, 0, cmd.flags, cmd.type, cmd.cookie, cmd.offset, cmd.length)
      : encodeCompactRequest(hdr, 0, cmd.flags, cmd.type, cmd.cookie, cmd.offset, cmd.length);
  }

  /**
   * Sends a file WRITE on the raw socket if it can leave whole now; false when nothing was
   * sent (Node still holds bytes for the socket, or the socket lacks room: the server has
   * not read what we sent, so a reply is coming and onData tries again). Raw bytes may only
   * follow what Node has already handed to the kernel, hence the flush and the queue check.
   */
  private trySendFromFile(cmd: Command): boolean {
    const stream = this.stream!;
    const sender = this.fileSender!;
    this.flushHeld();
    if (stream.writableLength > 0) return false;
    const hdr = this.rawHeader;
    const n = this.encodeHeader(hdr, cmd);
    let sent = 0;
    if (sender.enabled) {
      try {
        sent = sender.send(hdr, n, cmd.fileFd!, cmd.fileOffset!, cmd.length);
      } catch (err) {
        // Part of the request may be on the wire: the connection cannot go on.
        void this.fail(err instanceof NbdError ? err
          : new NbdError('EIO', `pwrite from file: ${(err as Error).message}`, { cause: err }));
        return true;
      }
      if (sent < 0) return false;
      if (sent === n + cmd.length) {
        const cb = cmd.onSent;
        cmd.onSent = undefined;
        cb?.();
        return true;
      }
    }
    this.sendRestCopied(cmd, hdr, n, sent);
    return true;
  }

  /** Sends what the raw socket did not take (`sent` bytes of header + payload went) through the stream. */
  private sendRestCopied(cmd: Command, hdr: Buffer, headerLength: number, sent: number): void {
    const stream = this.stream!;
    const payloadDone = Math.max(0, sent - headerLength);
    let rest: Buffer;
    try {
      rest = fileSends!.readFileRange(cmd.fileFd!, cmd.fileOffset! + payloadDone, cmd.length - payloadDone);
    } catch (err) {
      if (sent > 0) {
        void this.fail(err);
      } else {
        // Nothing is on the wire: only this request fails, the connection goes on.
        cmd.error = err instanceof NbdError ? err : new NbdError('EIO', String(err));
        this.finish(cmd);
      }
      return;
    }
    this.fileSender!.copiedBytes += rest.length;
    if (sent < headerLength) stream.write(Buffer.from(hdr.subarray(sent, headerLength)));
    if (cmd.onSent === undefined) {
      stream.write(rest);
    } else {
      this.sentCallbacks.push(cmd.onSent);
      cmd.onSent = undefined;
      stream.write(rest, this.payloadSent);
    }
  }

  /** Sends waiting file WRITEs while the socket takes them. */
  private pumpFiles(): void {
    const backlog = this.fileBacklog;
    while (this.fileBacklogHead < backlog.length && this._state === 'ready') {
      if (!this.trySendFromFile(backlog[this.fileBacklogHead]!)) return;
      backlog[this.fileBacklogHead++] = undefined;
    }
    this.fileBacklog = [];
    this.fileBacklogHead = 0;
  }

  /** Write callback of payloads that asked for onSent; one shared function, no closure per request. */
  private readonly payloadSent = (err?: Error | null): void => {
    const cb = this.sentCallbacks[this.sentHead];
    this.sentCallbacks[this.sentHead++] = undefined;
    if (this.sentHead === this.sentCallbacks.length) {
      this.sentCallbacks.length = 0;
      this.sentHead = 0;
    }
    // A failed write means the connection is going down; the command's promise reports it.
    if (!err) cb?.();
  };

  /**
   * Schedules the held requests to leave at the end of this tick once a batch is full, or
   * when the server is running out of work (this also flushes the last requests of a run:
   * replies keep arriving until the server is down to the low-water mark).
   */
  private maybeFlush(): void {
    if (this.flushScheduled) return;
    const held = this.held.length;
    if (held >= this.requestBatch || this.inflight.size - held <= REQUEST_LOW_WATER) {
      this.flushScheduled = true;
      process.nextTick(this.flushHeld);
    }
  }

  private finish(cmd: Command): void {
    this.inflight.delete(cmd.cookie);
    if (this.held.length > 0) this.maybeFlush();
    if (cmd.type === CMD_READ && cmd.length >= MIN_DIRECT_READ) this.bigReads--;
    if (cmd.error) {
      cmd.reject(cmd.error);
    } else if (cmd.type === CMD_READ && cmd.seen < cmd.length) {
      cmd.reject(new NbdError('EIO', `pread: server sent only ${cmd.seen} of ${cmd.length} bytes without an error`));
    } else {
      cmd.resolve(cmd.type === CMD_BLOCK_STATUS ? cmd.extents : cmd.take !== undefined ? cmd.data ?? cmd.take() : undefined);
    }
    if (this.queueHead < this.queue.length && this._state === 'ready') {
      const next = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as Command;
      if (this.queueHead === this.queue.length) {
        this.queue = [];
        this.queueHead = 0;
      }
      this.send(next);
    } else if (this.inflight.size === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  // ---------------------------------------------------------------- stream events

  private readonly onData = (chunk: Buffer): void => {
    if (this._state !== 'ready' && this._state !== 'closed') return;
    try {
      this.reader!.feed(chunk);
    } catch (err) {
      void this.fail(err);
    }
    // Each reply means the server read a request: the socket may have room again.
    if (this.fileBacklogHead < this.fileBacklog.length) this.pumpFiles();
  };

  private readonly onEnd = (): void => {
    if (this._state !== 'ready') return;
    const cut = this.reader?.midReply ? ' in the middle of a reply' : '';
    void this.fail(new NbdError('ECONNRESET', `server closed the connection${cut}`));
  };

  private readonly onError = (err: Error): void => {
    void this.fail(new NbdError('ECONNRESET', `connection error: ${err.message}`, { cause: err }));
  };

  /** Kills the connection: every pending and later command fails with `err`. */
  private async fail(reason: unknown): Promise<void> {
    if (this._state === 'dead' || this._state === 'closed') return;
    const err = reason instanceof NbdError ? reason
      : new NbdError('EIO', reason instanceof Error ? reason.message : String(reason), { cause: reason });
    debug(() => `connection dead: ${err.message}`);
    this.deadError = err;
    await this.shutdown('dead');
  }

  private async shutdown(final: 'dead' | 'closed'): Promise<void> {
    this._state = final;
    this.deadError ??= new NbdError('ESHUTDOWN', 'connection closed');
    const err = this.deadError;
    for (const cmd of this.inflight.values()) cmd.reject(err);
    this.inflight.clear();
    this.bigReads = 0;
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i]!.reject(err);
    this.queue = [];
    this.queueHead = 0;
    this.fileBacklog = [];
    this.fileBacklogHead = 0;
    for (const w of this.drainWaiters) w();
    this.drainWaiters = [];
    // No more reads into callers' buffers: their commands have just been failed.
    this.transport?.setReadTarget?.(null);
    const stream = this.stream ?? this.neg?.io.stream ?? this.transport?.stream;
    stream?.destroy();
    await this.transport?.cleanup();
  }

  /**
   * Waits for commands in flight, sends NBD_CMD_DISC, closes the stream and reaps any
   * subprocess. Safe to call in any state and more than once.
   */
  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  /** Alias of close(), named as libnbd names it. */
  disconnect(): Promise<void> {
    return this.close();
  }

  private async closeInternal(): Promise<void> {
    if (this._state === 'ready') {
      if (this.inflight.size > 0) await new Promise<void>((r) => this.drainWaiters.push(r));
    }
    if (this._state === 'ready') {
      const stream = this.stream!;
      const hdr = Buffer.allocUnsafe(EXTENDED_REQUEST_SIZE);
      const n = this.conn.extendedHeaders
        ? encodeExtendedRequest(hdr, 0, 0, CMD_DISC, this.nextCookie++, 0, 0)
        : encodeCompactRequest(hdr, 0, 0, CMD_DISC, this.nextCookie++, 0, 0);
      debug(() => 'request: disconnect');
      this._state = 'closed';
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        stream.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        stream.end(hdr.subarray(0, n));
      });
      this.deadError = new NbdError('ESHUTDOWN', 'connection closed');
      await this.shutdown('closed');
      return;
    }
    if (this._state === 'option-mode') {
      await this.neg!.abort().catch(() => undefined);
    }
    if (this._state !== 'dead') this.deadError = new NbdError('ESHUTDOWN', 'connection closed');
    await this.shutdown('closed');
  }
}
