// The transmission phase of one connection, as a scheduler: requests in from the parser,
// checked, started concurrently against the backend within the connection's limits, and
// reaped when done; replies go out in completion order through the reply writer. Flow
// control and the end of the connection live here too.
import type { Duplex } from 'node:stream';
import { CMD_DISC, CMD_READ, CMD_WRITE } from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import { ReplyStyle } from '../protocol/replies.js';
import type { BufferPool } from './buffer-pool.js';
import { Commands } from './commands.js';
import { FaultInjector } from './faults.js';
import type { Negotiated } from './handshake-state.js';
import { MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES, type SessionConfig } from './options.js';
import { ReplyWriter } from './reply-writer.js';
import { checkRequest, commandName, type RequestRules } from './request-check.js';
import { RequestParser, type ParsedRequest } from './request-parser.js';

/** Read reply bytes we build ahead of what the socket has taken. */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;

export class Transmission {
  private readonly stream: Duplex;
  private readonly rules: RequestRules;
  private readonly parser: RequestParser;
  private readonly replies: ReplyWriter;
  private readonly commands: Commands;
  private readonly faults: FaultInjector;
  private inFlight = 0;
  /** Commands received and checked but not started (see pump). */
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
    const backend = n.export.backend;
    const writable = !n.export.readOnly && backend.writable;
    this.rules = {
      backend, size: backend.size, style: n.style, transmissionFlags: n.transmissionFlags, writable,
      metaContexts: n.metaContexts.length,
    };
    this.faults = new FaultInjector(config.faults);
    this.replies = new ReplyWriter(this.stream, n.style, pool, {
      readSent: (req) => this.readFlushed(req),
      backlog: () => this.onBacklog(),
    });
    this.commands = new Commands(backend, this.replies, this.faults, writable, n.metaContexts);
    this.parser = new RequestParser(n.style === ReplyStyle.Extended, {
      keepPayload: (req) => checkRequest(req, this.rules) === undefined,
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
    const bad = checkRequest(req, this.rules);
    if (bad) {
      this.releasePayload(req);
      this.config.log?.(`rejected ${commandName(req.type)}: ${bad.message}`);
      this.replies.error(req, bad.code, bad.message);
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
      this.commands.run(req).then(
        () => this.completed(req),
        (err: unknown) => {
          const e = err instanceof NbdError ? err : new NbdError('EIO', (err as Error)?.message ?? String(err));
          this.replies.error(req, e.code, e.message);
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

  /** Gives back the pooled buffer behind a WRITE payload once it is no longer needed. */
  private releasePayload(req: ParsedRequest): void {
    if (req.pooled) {
      this.pool.release(req.pooled);
      req.pooled = undefined;
    }
    req.payload = undefined;
  }

  // ---- flow control and shutdown ----

  private onBacklog(): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    this.updateInput();
  }

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
    this.replies.stop();
    // end() flushes queued replies first; destroy after, so a client that half-closed gets its data.
    this.stream.end(() => this.stream.destroy());
    setTimeout(() => this.stream.destroy(), 5000).unref();
  }

  private kill(message: string | undefined): void {
    if (message) this.config.log?.(`dropping connection: ${message}`);
    this.parser.stop();
    this.dead = true;
    this.replies.stop();
    this.stream.destroy();
    this.finish();
  }

  private finish(): void {
    this.dead = true;
    this.replies.stop();
    this.resolveDone();
  }
}

/** Memory a command holds while in flight: its write payload or its read reply. */
function payloadBytes(req: ParsedRequest): number {
  return req.type === CMD_READ || req.type === CMD_WRITE ? req.length : 0;
}
