// The handshake of one connection up to transmission: the fixed opening start() runs (greeting,
// TLS, header style), then option mode's calls, until an export is opened.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import type { ClientTlsOptions } from '../tls/types.js';
import type { ClientOptions } from './client-options.js';
import { processLog, type ConnectionLog } from './logger.js';
import { HandshakeIO } from './handshake-io.js';
import type { StatsCounter } from './stats.js';
import { DEFAULT_META_CONTEXTS, Negotiator, noTls } from './negotiate.js';
import type { ConnectionInfo, ExportInfo, ExportListing } from './types.js';

/** True when `err` is a refused option: the connection stays usable in option mode. */
export function isOptionRefusal(err: unknown): boolean {
  return err instanceof NbdError && 'replyType' in err;
}

export class OptionPhase {
  readonly neg: Negotiator;

  /** `conn` is the client's ConnectionInfo, kept up to date with what each option negotiated. */
  constructor(
    stream: Duplex, private readonly opts: ClientOptions, private readonly conn: ConnectionInfo, stats: StatsCounter,
    log: ConnectionLog = processLog,
  ) {
    this.neg = new Negotiator(new HandshakeIO(stream, undefined, stats));
    this.neg.allowFixedNewstyle = opts.handshakeFlags?.fixedNewstyle ?? true;
    this.neg.allowNoZeroes = opts.handshakeFlags?.noZeroes ?? true;
    this.neg.requestBlockSize = opts.requestBlockSize ?? true;
    this.neg.tlsRequired = opts.tls?.mode === 'require';
    this.neg.log = log;
  }

  /**
   * Greets the server and asks for what the options want, under the handshake timeout.
   * Resolves to the export to enter transmission with, or null when the connection stays in
   * option mode for the caller.
   */
  async open(): Promise<ExportInfo | null> {
    const neg = this.neg;
    const limit = this.opts.handshakeTimeoutMs ?? 30_000;
    const timer = limit > 0
      ? setTimeout(() => neg.io.abort(new NbdError('ETIMEDOUT', `handshake: no answer from the server after ${limit / 1000} s`)), limit)
      : undefined;
    try {
      await neg.greet();
      this.conn.protocol = neg.protocol;
      if (neg.protocol === 'oldstyle') {
        this.sync();
        return neg.oldstyleExport!;
      }
      if (neg.canHaggle) {
        await this.negotiateTls();
        if (this.opts.requestExtendedHeaders ?? true) await neg.extendedHeadersOption();
        if (!neg.structuredReplies && (this.opts.requestStructuredReplies ?? true)) await neg.structuredReplyOption();
        this.sync();
      }
      if (this.opts.optMode && neg.canHaggle) return null;
      return await this.go(this.opts.exportName ?? '');
    } finally {
      clearTimeout(timer);
    }
  }

  private async negotiateTls(): Promise<void> {
    const tls = this.opts.tls;
    if (!tls || tls.mode === 'off') return;
    const ok = await this.neg.startTls(tls);
    // Nothing more is sent: the caller's shutdown closes the socket without NBD_OPT_ABORT.
    if (!ok && tls.mode === 'require') throw noTls('NBD_OPT_STARTTLS: the server refused TLS');
    this.conn.tls = ok;
  }

  /** Copies what the negotiator agreed with the server into the client's ConnectionInfo. */
  private sync(): void {
    const neg = this.neg;
    this.conn.protocol = neg.protocol;
    this.conn.tls = neg.tls;
    this.conn.structuredReplies = neg.structuredReplies;
    this.conn.extendedHeaders = neg.extendedHeaders;
    this.conn.metaContexts = [...neg.contexts.values()];
  }

  /** Sets the wanted meta contexts if none are yet, then NBD_OPT_GO: the export to transmit on. */
  async go(exportName: string): Promise<ExportInfo> {
    const neg = this.neg;
    const wanted = this.opts.metaContexts ?? DEFAULT_META_CONTEXTS;
    if (neg.canHaggle && neg.structuredReplies && wanted.length > 0 && neg.contexts.size === 0) {
      try {
        await neg.metaContextOption(true, exportName, wanted);
      } catch (err) {
        // A server without meta contexts still serves data; block status will say ENOTSUP.
        if (!(err instanceof NbdError) || err.code === 'EPROTO' || err.code === 'ECONNRESET') throw err;
        neg.log.debug(() => `SET_META_CONTEXT refused: ${(err as Error).message}`);
      }
    }
    const info = await neg.infoOrGo(true, exportName, this.opts.fullInfo ?? true);
    this.sync();
    return info;
  }

  list(): Promise<ExportListing[]> {
    return this.neg.list();
  }

  info(exportName: string): Promise<ExportInfo> {
    return this.neg.infoOrGo(false, exportName, this.opts.fullInfo ?? true);
  }

  async listMetaContext(queries: string[], exportName: string): Promise<string[]> {
    return [...(await this.neg.metaContextOption(false, exportName, queries)).values()];
  }

  async setMetaContext(queries: string[], exportName: string): Promise<string[]> {
    const found = await this.neg.metaContextOption(true, exportName, queries);
    this.sync();
    return [...found.values()];
  }

  async structuredReply(): Promise<boolean> {
    const ok = await this.neg.structuredReplyOption();
    this.sync();
    return ok;
  }

  async extendedHeaders(): Promise<boolean> {
    const ok = await this.neg.extendedHeadersOption();
    this.sync();
    return ok;
  }

  async startTls(options: ClientTlsOptions): Promise<boolean> {
    const ok = await this.neg.startTls(options);
    this.sync();
    return ok;
  }

  /** NBD_OPT_ABORT, best effort: the connection is closed after it either way. */
  async abort(): Promise<void> {
    await this.neg.abort().catch(() => undefined);
  }
}
