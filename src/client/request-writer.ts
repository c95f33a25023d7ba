// Puts requests on the wire: gives each its cookie, gathers those of a tick (or a batch) into
// one writev, reports when WRITE payloads have left, and sends file WRITEs with sendfile(2).
// The mirror image of ReplyReader: it knows the connection only through a narrow sink.
import type { Duplex } from 'node:stream';
import { CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, EXTENDED_REQUEST_SIZE } from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import { encodeCompactRequest, encodeExtendedRequest } from '../protocol/requests.js';
import { Command, commandName } from './command.js';
import { processLog, type ConnectionLog } from './logger.js';
import type { FileSender } from './file-sender.js';
import type { StatsCounter } from './stats.js';

export interface RequestSink {
  /** `cmd` has its cookie and is about to leave: from now on its reply can arrive. */
  track(cmd: Command): void;
  /** Requests tracked and not yet finished (what the server still has to answer). */
  pending(): number;
  /** Settles a request that failed before any byte of it left; the connection goes on. */
  finish(cmd: Command): void;
  /** Part of a request is on the wire and the rest cannot follow: the connection is over. */
  fail(err: unknown): void;
}

export interface WriterMode {
  /** Extended (32-byte) request headers were negotiated. */
  extended: boolean;
  /** The stream is a plain socket this client opened, so raw sends may go under it. */
  rawSocket: boolean;
  /** Held requests wait until this many can leave together (see ClientOptions.requestBatch). */
  batch: number;
}

/** With a batch above 1, held requests leave at once when the server has this few left. */
const REQUEST_LOW_WATER = 16;

/**
 * pwriteFromFile's machinery, loaded on first use: it brings koffi, whose start-up cost
 * connections that never write from a file (nbdinfo, reads) must not pay.
 */
let fileSends: typeof import('./file-sender.js') | undefined;

export async function loadFileSupport(): Promise<void> {
  fileSends ??= await import('./file-sender.js');
}

/** The loaded file machinery, or undefined before loadFileSupport() finished. */
export function fileSupport(): typeof import('./file-sender.js') | undefined {
  return fileSends;
}

export class RequestWriter {
  private nextCookie = 1;
  private stopped = false;
  /**
   * Requests sent but not yet written to the stream (see ClientOptions.requestBatch). They
   * wait here, not in a corked stream: Node leaves everything it buffered behind a write in
   * progress until the stream is uncorked, so a stream corked across ticks could also hold
   * requests we had already released, and wait forever for their replies.
   */
  private held: Command[] = [];
  private flushScheduled = false;
  /** onSent callbacks of queued WRITE payloads, in send order (socket writes complete in order). */
  private sentCallbacks: Array<(() => void) | undefined> = [];
  private sentHead = 0;
  /** sendfile path of file WRITEs: null = not possible here, undefined = not looked at yet. */
  private sender: FileSender | null | undefined;
  /** File WRITEs tracked but waiting for room in the socket, in order. */
  private fileBacklog: Array<Command | undefined> = [];
  private fileBacklogHead = 0;
  /** Header of a raw-socket request: the kernel copies it at once, so one buffer serves all. */
  private readonly rawHeader = Buffer.alloc(EXTENDED_REQUEST_SIZE);

  constructor(
    private readonly stream: Duplex, private readonly sink: RequestSink, private readonly mode: WriterMode,
    private readonly stats: StatsCounter,
    private readonly log: ConnectionLog = processLog,
  ) {}

  /** Every request passes here once: its cookie, then the socket now, at the end of the tick, or with its batch. */
  send(cmd: Command): void {
    if (cmd.fileFd !== undefined && !this.sendsFromFile && !this.readPayload(cmd)) return;
    const cookie = this.nextCookie++;
    cmd.cookie = cookie;
    this.sink.track(cmd);
    if (this.log.enabled) this.log.debug(() => `request: ${commandName(cmd.type)} cookie ${cookie} offset ${cmd.offset} length ${cmd.length} flags 0x${cmd.flags.toString(16)}`);
    if (cmd.fileFd !== undefined) {
      // Later file WRITEs wait behind earlier ones, so they leave in the order they came.
      if (this.fileBacklogHead < this.fileBacklog.length || !this.trySendFromFile(cmd)) this.fileBacklog.push(cmd);
      return;
    }
    this.held.push(cmd);
    this.maybeFlush();
  }

  /** A request was answered: the server has less left, which may make held requests due. */
  answered(): void {
    if (this.held.length > 0) this.maybeFlush();
  }

  /** Replies came, so the server read requests: the socket may have room for waiting file WRITEs. */
  replied(): void {
    if (this.fileBacklogHead < this.fileBacklog.length) this.pumpFiles();
  }

  /**
   * Sends NBD_CMD_DISC and ends the stream; resolves when the server closed it too, or after
   * a second (the server owes no reply). Call with nothing in flight.
   */
  disconnect(): Promise<void> {
    const cmd = Command.disconnect();
    cmd.cookie = this.nextCookie++;
    const hdr = Buffer.allocUnsafe(EXTENDED_REQUEST_SIZE);
    const n = this.encodeHeader(hdr, cmd);
    this.log.debug(() => 'request: disconnect');
    this.stats.bytesSent += n;
    this.stats.chunksSent++;
    const stream = this.stream;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      stream.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      stream.end(hdr.subarray(0, n));
    });
  }

  /** The connection is over: nothing more leaves, waiting requests are dropped (the client fails them). */
  stop(): void {
    this.stopped = true;
    this.held = [];
    this.fileBacklog = [];
    this.fileBacklogHead = 0;
  }

  /** True when file WRITEs go out with sendfile on this connection (looked at once, on first ask). */
  get sendsFromFile(): boolean {
    if (this.sender === undefined) {
      if (this.stopped || fileSends === undefined) return false;
      this.sender = (this.mode.rawSocket ? fileSends.FileSender.forStream(this.stream) : undefined) ?? null;
    }
    return this.sender !== null && this.sender.enabled;
  }

  /** Payload bytes file WRITEs sent by sendfile, and those that had to be copied through a buffer. */
  get fileSendStats(): { sendfileBytes: number; copiedBytes: number } {
    const s = this.sender;
    return { sendfileBytes: s?.sendfileBytes ?? 0, copiedBytes: s?.copiedBytes ?? 0 };
  }

  private encodeHeader(hdr: Buffer, cmd: Command): number {
    return this.mode.extended
      ? encodeExtendedRequest(hdr, 0, cmd.flags, cmd.type, cmd.cookie, cmd.offset,
        (cmd.flags & CMD_FLAG_PAYLOAD_LEN) !== 0 && cmd.type !== CMD_WRITE ? cmd.data!.length : cmd.length)
      : encodeCompactRequest(hdr, 0, cmd.flags, cmd.type, cmd.cookie, cmd.offset, cmd.length);
  }

  /**
   * Schedules the held requests to leave at the end of this tick once a batch is full, or
   * when the server is running out of work (this also flushes the last requests of a run:
   * replies keep arriving until the server is down to the low-water mark).
   */
  private maybeFlush(): void {
    if (this.flushScheduled) return;
    const held = this.held.length;
    if (held >= this.mode.batch || this.sink.pending() - held <= REQUEST_LOW_WATER) {
      this.flushScheduled = true;
      process.nextTick(this.flushHeld);
    }
  }

  /** Writes the held requests to the stream in one writev, each header beside its payload. */
  private readonly flushHeld = (): void => {
    this.flushScheduled = false;
    const held = this.held;
    if (held.length === 0) return;
    this.held = [];
    if (this.stopped) return;
    const stream = this.stream;
    const stats = this.stats;
    stream.cork();
    for (const cmd of held) {
      const hdr = Buffer.allocUnsafe(EXTENDED_REQUEST_SIZE);
      const n = this.encodeHeader(hdr, cmd);
      stream.write(n === hdr.length ? hdr : hdr.subarray(0, n));
      stats.bytesSent += n;
      if (cmd.type === CMD_WRITE) {
        this.writePayload(cmd, cmd.data!);
        stats.bytesSent += cmd.length;
      } else if ((cmd.flags & CMD_FLAG_PAYLOAD_LEN) !== 0) {
        // A request payload beside its effect length (a filtered BLOCK_STATUS).
        stream.write(cmd.data!);
        stats.bytesSent += cmd.data!.length;
      }
    }
    stats.chunksSent += held.length;
    stream.uncork();
  };

  private writePayload(cmd: Command, payload: Uint8Array): void {
    if (cmd.onSent === undefined) {
      this.stream.write(payload);
    } else {
      this.sentCallbacks.push(cmd.onSent);
      cmd.onSent = undefined;
      this.stream.write(payload, this.payloadSent);
    }
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
   * Sends a file WRITE on the raw socket if it can leave whole now; false when nothing was
   * sent (Node still holds bytes for the socket, or the socket lacks room: the server has
   * not read what we sent, so a reply is coming and replied() tries again). Raw bytes may
   * only follow what Node has already handed to the kernel, hence the flush and the check.
   */
  private trySendFromFile(cmd: Command): boolean {
    const stream = this.stream;
    this.flushHeld();
    if (stream.writableLength > 0) return false;
    const hdr = this.rawHeader;
    const n = this.encodeHeader(hdr, cmd);
    const sender = this.sendsFromFile ? this.sender! : null;
    let sent = 0;
    if (sender !== null) {
      try {
        sent = sender.send(hdr, n, cmd.fileFd!, cmd.fileOffset, cmd.length);
      } catch (err) {
        // Part of the request may be on the wire: the connection cannot go on.
        this.sink.fail(err instanceof NbdError ? err
          : new NbdError('EIO', `pwrite from file: ${(err as Error).message}`, { cause: err }));
        return true;
      }
      if (sent < 0) return false;
      this.stats.chunksSent++;
      this.stats.bytesSent += n + cmd.length;
      if (sent === n + cmd.length) {
        const cb = cmd.onSent;
        cmd.onSent = undefined;
        cb?.();
        return true;
      }
    }
    if (sender === null) {
      this.stats.chunksSent++;
      this.stats.bytesSent += n + cmd.length;
    }
    this.sendRestCopied(cmd, hdr, n, sent);
    return true;
  }

  /**
   * Reads a file WRITE's payload into a buffer, where sendfile cannot go under the stream
   * (TLS, pipes) or the file cannot be spliced: it then leaves as any WRITE does. False when
   * the read failed; the request is then finished with that error, before it was sent.
   */
  private readPayload(cmd: Command): boolean {
    try {
      cmd.data = fileSends!.readFileRange(cmd.fileFd!, cmd.fileOffset, cmd.length);
    } catch (err) {
      cmd.error = err instanceof NbdError ? err : new NbdError('EIO', String(err));
      this.sink.finish(cmd);
      return false;
    }
    cmd.fileFd = undefined;
    if (this.sender) this.sender.copiedBytes += cmd.length;
    return true;
  }

  /** Sends what the raw socket did not take (`sent` bytes of header + payload went) through the stream. */
  private sendRestCopied(cmd: Command, hdr: Buffer, headerLength: number, sent: number): void {
    const payloadDone = Math.max(0, sent - headerLength);
    let rest: Buffer;
    try {
      rest = fileSends!.readFileRange(cmd.fileFd!, cmd.fileOffset + payloadDone, cmd.length - payloadDone);
    } catch (err) {
      if (sent > 0) {
        this.sink.fail(err);
      } else {
        // Nothing is on the wire: only this request fails, the connection goes on.
        cmd.error = err instanceof NbdError ? err : new NbdError('EIO', String(err));
        this.sink.finish(cmd);
      }
      return;
    }
    if (this.sender) this.sender.copiedBytes += rest.length;
    if (sent < headerLength) this.stream.write(Buffer.from(hdr.subarray(sent, headerLength)));
    this.writePayload(cmd, rest);
  }

  /** Sends waiting file WRITEs while the socket takes them. */
  private pumpFiles(): void {
    const backlog = this.fileBacklog;
    while (this.fileBacklogHead < backlog.length && !this.stopped) {
      if (!this.trySendFromFile(backlog[this.fileBacklogHead]!)) return;
      backlog[this.fileBacklogHead++] = undefined;
    }
    this.fileBacklog = [];
    this.fileBacklogHead = 0;
  }
}
