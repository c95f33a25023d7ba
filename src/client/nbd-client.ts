// One NBD connection: negotiation, then many commands in flight with replies matched by cookie.
// States: created -> connecting -> negotiating -> (option-mode ->) ready -> closed, or dead
// when the transport fails or the server breaks the protocol (every pending and later command
// then fails with the error that killed it). This class coordinates: OptionPhase runs the
// handshake, RequestWriter puts requests on the wire, ReplyReader matches the replies.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import type { ClientOptions } from './client-options.js';
import { checkFilteredReply, filterIds } from './block-status-filter.js';
import { Command, commandName } from './command.js';
import { checkCommand, checkFileSource, fitBlockStatusLength } from './command-check.js';
import { waitForInFlight, type CloseOptions } from './close-options.js';
import { ConnectionLog } from './logger.js';
import { strictChecks, type StrictChecks } from './strict-mode.js';
import { OptionCalls } from './option-calls.js';
import { OptionPhase, isOptionRefusal } from './option-phase.js';
import { PendingRequests } from './pending-requests.js';
import { buildPipeline } from './pipeline.js';
import type { ChunkCallback } from './read-chunks.js';
import type { ReplyReader } from './reply-reader.js';
import { type RequestWriter, fileSupport, loadFileSupport } from './request-writer.js';
import { StatsCounter, type ConnectionStats } from './stats.js';
import type { Transport } from './transport.js';
import type { BlockStatusFlags, BlockStatusResult, CommandFlags, ConnectionInfo, ExportInfo, ReadFlags, ZeroFlags } from './types.js';
import { connectionUri } from './uri.js';

export type { ClientOptions } from './client-options.js';

export type ClientState = 'created' | 'connecting' | 'negotiating' | 'option-mode' | 'ready' | 'dead' | 'closed';

export class NbdClient extends OptionCalls {
  private _state: ClientState = 'created';
  private transport: Transport | null = null;
  private phase: OptionPhase | null = null;
  private stream: Duplex | null = null;
  private reader: ReplyReader | null = null;
  private writer: RequestWriter | null = null;
  private info: ExportInfo | undefined;
  private conn: ConnectionInfo = {
    protocol: 'newstyle-fixed', tls: false, structuredReplies: false, extendedHeaders: false, metaContexts: [],
  };
  /** @internal */
  protected readonly opts: ClientOptions;
  private readonly pending: PendingRequests;
  private deadError: NbdError | null = null;
  private closing: Promise<void> | null = null;
  private readonly counters = new StatsCounter();
  private readonly log: ConnectionLog;
  private readonly strict: StrictChecks;
  /** Ends a close() that waits for commands in flight (a later close with abandonPending). */
  private abandonWait: () => void = () => undefined;
  private readonly abandoned = new Promise<void>((resolve) => (this.abandonWait = resolve));

  /** Loads what pwriteFromFile needs; until then sendsFromFile is false. */
  static loadFileSupport(): Promise<void> {
    return loadFileSupport();
  }

  constructor(options: ClientOptions = {}) {
    super();
    this.opts = options;
    this.pending = new PendingRequests(Math.max(1, options.maxInFlight ?? 64));
    this.log = new ConnectionLog(options.logger, options.name);
    this.strict = strictChecks(options.strict);
  }

  /**
   * Where the connection is (libnbd's aio_is_* queries): 'ready' takes commands; 'dead'
   * means the transport failed or the server broke the protocol, and `error` says why.
   */
  get state(): ClientState {
    return this._state;
  }

  /**
   * Why the connection ended, without sending anything (undefined while it lives; ESHUTDOWN
   * after close()). Example: `if (c.state === 'dead') console.error(c.error?.message)`.
   */
  get error(): NbdError | undefined {
    return this._state === 'dead' || this._state === 'closed' ? this.deadError ?? undefined : undefined;
  }

  /** The connection's name in its debug messages (ClientOptions.name, default nbdN). */
  get name(): string {
    return this.log.name;
  }

  /** Facts about the open export; throws before NBD_OPT_GO / EXPORT_NAME finished. */
  get export(): ExportInfo {
    if (!this.info) throw new NbdError('ENOTCONN', `no export is open (connection is ${this._state})`);
    return this.info;
  }

  get connection(): ConnectionInfo {
    return this.conn;
  }

  /** Bytes and chunks sent and received so far (libnbd's nbd_stats_*), as a copy: see ConnectionStats. */
  get stats(): ConnectionStats {
    return this.counters.snapshot();
  }

  /** Commands sent and not yet answered, plus those waiting for a slot. */
  get inFlight(): number {
    return this.pending.total;
  }

  // ---------------------------------------------------------------- handshake and option mode

  /** Runs the handshake over an open transport. Used by `connect()`. */
  async start(transport: Transport): Promise<void> {
    if (this._state !== 'created') throw new NbdError('EINVAL', `start: client is already ${this._state}`);
    this.transport = transport;
    this._state = 'negotiating';
    this.phase = new OptionPhase(transport.stream, this.opts, this.conn, this.counters, this.log);
    try {
      const info = await this.phase.open();
      if (info === null) this._state = 'option-mode';
      else this.enterTransmission(info);
    } catch (err) {
      await this.fail(err);
      throw err;
    }
  }

  /**
   * Runs one option-mode call. A refused option leaves the connection usable; anything else
   * (EOF, bad magic) kills it.
   * @internal
   */
  protected async option<T>(what: string, call: (phase: OptionPhase) => Promise<T>): Promise<T> {
    if (this._state !== 'option-mode') {
      throw this.deadError ?? new NbdError('EINVAL', `${what}: only valid in option mode (connection is ${this._state})`);
    }
    try {
      return await call(this.phase!);
    } catch (err) {
      if (!isOptionRefusal(err)) await this.fail(err);
      throw err;
    }
  }

  /** Ends option mode: opens `exportName` (default: the connect option's) for transmission. */
  async optGo(exportName = this.opts.exportName ?? ''): Promise<void> {
    const info = await this.option('optGo', (p) => p.go(exportName));
    this.enterTransmission(info);
  }

  /** Ends option mode without opening an export (NBD_OPT_ABORT) and closes the connection. */
  async optAbort(): Promise<void> {
    await this.option('optAbort', (p) => p.abort());
    await this.shutdown('closed');
  }

  private enterTransmission(info: ExportInfo): void {
    const neg = this.phase!.neg;
    this.info = info;
    if (this.transport) this.conn.uri = connectionUri(this.transport.address, info.exportName, neg.tls, this.opts.tls);
    const leftover = neg.io.detach();
    const stream = neg.io.stream;
    this.stream = stream;
    // We own the socket and nothing is layered on it: raw sends and direct reads are safe.
    const rawSocket = this.transport !== null && stream === this.transport.stream;
    const { reader, writer } = buildPipeline(neg, stream, rawSocket && !neg.tls, this.opts, {
      pending: this.pending, counters: this.counters, log: this.log,
      finish: (cmd) => this.finish(cmd), fail: (err) => void this.fail(err),
    });
    this.reader = reader;
    this.writer = writer;
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('close', this.onEnd);
    stream.on('error', this.onError);
    // Read payloads go straight from the kernel into the caller's buffers (one copy, like
    // libnbd's recv into the user buffer).
    if (rawSocket) this.transport!.setReadTarget?.(() => reader.directTarget());
    this._state = 'ready';
    this.log.debug(() => `ready: export '${info.exportName}' size ${info.size} flags 0x${info.transmissionFlags.toString(16)}, ` +
      `structured ${neg.structuredReplies}, extended ${neg.extendedHeaders}, contexts [${[...neg.contexts.values()].join(', ')}]`);
    for (const chunk of leftover) this.onData(chunk);
    stream.resume();
  }

  // ---------------------------------------------------------------- commands

  pread(buf: Uint8Array, offset: number, flags?: ReadFlags): Promise<void> {
    return this.submit(Command.read(buf, offset, flags)) as Promise<void>;
  }

  /**
   * pread that tells `onChunk` about each data chunk, hole and offset error of the reply as
   * it lands (libnbd's pread_structured); the callback may fail the read by throwing (see
   * ChunkCallback, ReadChunk). Without structured replies the whole read is one data chunk;
   * with `df` the server sends one chunk. Example, counting what was sent as holes:
   * `let holes = 0; await c.preadStructured(buf, 0, (k) => { if (k.status === 'hole') holes += k.length; });`
   */
  preadStructured(buf: Uint8Array, offset: number, onChunk: ChunkCallback, flags?: ReadFlags): Promise<void> {
    return this.submit(Command.readStructured(buf, offset, onChunk, flags)) as Promise<void>;
  }

  /**
   * Reads `length` bytes at `offset` into a buffer the client asks `take()` for only when the
   * reply's data starts to arrive (at most once; never when the server answers with an error
   * first), and resolves to that buffer. With many reads in flight, a caller drawing from a
   * last-in first-out pool then keeps reusing the few buffers just released, still in the CPU
   * cache, instead of one cold buffer per pending read.
   */
  preadTake<B extends Uint8Array>(length: number, offset: number, take: () => B, flags?: ReadFlags): Promise<B> {
    return this.submit(Command.readTaking(length, offset, take, flags)) as Promise<B>;
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
    return this.submit(Command.write(buf, offset, flags, onSent)) as Promise<void>;
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
    const bad = checkFileSource(fd, fileOffset);
    if (bad) return Promise.reject(bad);
    if (fileSupport() === undefined) {
      return loadFileSupport().then(() => this.pwriteFromFile(fd, fileOffset, length, offset, flags, onSent));
    }
    return this.submit(Command.writeFromFile(fd, fileOffset, length, offset, flags, onSent)) as Promise<void>;
  }

  /** True when pwriteFromFile sends payloads with sendfile on this connection. */
  get sendsFromFile(): boolean {
    return this.writer?.sendsFromFile ?? false;
  }

  /** Payload bytes pwriteFromFile sent by sendfile, and those it had to copy through a buffer. */
  get fileSendStats(): { sendfileBytes: number; copiedBytes: number } {
    return this.writer?.fileSendStats ?? { sendfileBytes: 0, copiedBytes: 0 };
  }

  flush(): Promise<void> {
    return this.submit(Command.flush()) as Promise<void>;
  }

  trim(length: number, offset: number, flags?: CommandFlags): Promise<void> {
    return this.submit(Command.trim(length, offset, flags)) as Promise<void>;
  }

  zero(length: number, offset: number, flags?: ZeroFlags): Promise<void> {
    return this.submit(Command.zero(length, offset, flags)) as Promise<void>;
  }

  cache(length: number, offset: number): Promise<void> {
    return this.submit(Command.cache(length, offset)) as Promise<void>;
  }

  /**
   * Extents per negotiated context from `offset`. Without extended headers a length above
   * 4 GiB is shortened (the answer may stop short anyway, so callers ask again from the end).
   */
  async blockStatus(length: number, offset: number, flags?: BlockStatusFlags): Promise<BlockStatusResult> {
    const fitted = this.info ? fitBlockStatusLength(length, this.info, this.conn) : length;
    const r = (await this.submit(Command.blockStatus(fitted, offset, flags))) as BlockStatusResult | null;
    return r ?? new Map();
  }

  /**
   * blockStatus for only the named contexts (libnbd's block_status_filter, the PAYLOAD_LEN
   * form): needs extended headers (else ENOTSUP) and a server with `canBlockStatusPayload`
   * (else EINVAL); each name must be a negotiated context (else EINVAL). Example:
   * `(await c.blockStatusFilter(1 << 20, 0, ['qemu:dirty-bitmap:b0'])).get('qemu:dirty-bitmap:b0')`
   */
  async blockStatusFilter(length: number, offset: number, contexts: readonly string[], flags?: BlockStatusFlags): Promise<BlockStatusResult> {
    const ids = this._state === 'ready' ? filterIds(contexts, this.phase!.neg.contexts, this.info!, this.conn, this.strict) : [];
    if (ids instanceof NbdError) throw ids;
    const r = (await this.submit(Command.blockStatusFilter(length, offset, ids, flags))) as BlockStatusResult | null;
    return checkFilteredReply(r ?? new Map(), contexts);
  }

  /** Checks `cmd`, then sends it, or queues it while maxInFlight requests are out. */
  private submit(cmd: Command): Promise<unknown> {
    const err = this._state !== 'ready'
      ? this.deadError ?? new NbdError('ENOTCONN', `${commandName(cmd.type)}: connection is ${this._state}`)
      : checkCommand(cmd, this.info!, this.conn, this.strict);
    if (err) return Promise.reject(err);
    return new Promise((resolve, reject) => {
      cmd.resolve = resolve;
      cmd.reject = reject;
      if (this.pending.hasSlot()) this.writer!.send(cmd);
      else this.pending.wait(cmd);
    });
  }

  /** Every answered request ends here (ReplySink.finish), and so do those that failed before they left. */
  private finish(cmd: Command): void {
    this.pending.forget(cmd);
    this.writer!.answered();
    cmd.settle();
    const next = this._state === 'ready' ? this.pending.nextWaiting() : undefined;
    if (next !== undefined) this.writer!.send(next);
    else this.pending.checkDrained();
  }

  // ---------------------------------------------------------------- stream events and the end

  private readonly onData = (chunk: Buffer): void => {
    if (this._state !== 'ready' && this._state !== 'closed') return;
    this.counters.bytesReceived += chunk.length;
    try {
      this.reader!.feed(chunk);
    } catch (err) {
      void this.fail(err);
    }
    this.writer!.replied();
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
    this.log.debug(() => `connection dead: ${err.message}`);
    this.deadError = err;
    await this.shutdown('dead');
  }

  private async shutdown(final: 'dead' | 'closed'): Promise<void> {
    this._state = final;
    this.deadError ??= new NbdError('ESHUTDOWN', 'connection closed');
    const err = this.deadError;
    this.writer?.stop();
    this.pending.failAll(err);
    // No more reads into callers' buffers: their commands have just been failed.
    this.transport?.setReadTarget?.(null);
    const stream = this.stream ?? this.phase?.neg.io.stream ?? this.transport?.stream;
    stream?.destroy();
    await this.transport?.cleanup();
  }

  /**
   * Waits for commands in flight (without limit unless `options` says otherwise), sends
   * NBD_CMD_DISC, closes the stream and reaps any subprocess. Safe to call in any state and
   * more than once; a later call with `abandonPending` ends an earlier one's wait.
   * Example: `await client.close({ timeoutMs: 2000 })` (a stuck server cannot hold us longer).
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (options.abandonPending) this.abandonWait();
    this.closing ??= this.closeInternal(options);
    return this.closing;
  }

  /** Alias of close(), named as libnbd names it. */
  disconnect(options?: CloseOptions): Promise<void> {
    return this.close(options);
  }

  private async closeInternal(options: CloseOptions): Promise<void> {
    if (this._state === 'ready' && !(await waitForInFlight(this.pending, options, this.abandoned))) {
      if (this._state === 'ready') {
        const n = this.pending.total;
        this.deadError = new NbdError('ESHUTDOWN', `connection closed with ${n} command${n === 1 ? '' : 's'} in flight abandoned`);
        this.log.debug(() => this.deadError!.message);
        await this.shutdown('closed');
        return;
      }
    }
    if (this._state === 'ready') {
      this._state = 'closed';
      await this.writer!.disconnect();
    } else if (this._state === 'option-mode') {
      await this.phase!.abort();
    }
    if (this._state !== 'dead') this.deadError = new NbdError('ESHUTDOWN', 'connection closed');
    await this.shutdown('closed');
  }
}
