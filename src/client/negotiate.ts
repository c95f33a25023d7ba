// The handshake: oldstyle, newstyle and fixed newstyle, and every option the client uses.
// One Negotiator per connection; it runs over a HandshakeIO that STARTTLS may swap for a TLS one.
import {
  CONTEXT_BASE_ALLOCATION, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES,
  INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_EXPORT, INFO_NAME, OLDSTYLE_HANDSHAKE_SIZE, OPTION_REPLY_HEADER_SIZE,
  OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS, OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT,
  OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_BLOCK_SIZE_REQD, REP_ERR_INVALID,
  REP_ERR_PLATFORM, REP_ERR_POLICY, REP_ERR_SHUTDOWN, REP_ERR_TLS_REQD, REP_ERR_TOO_BIG, REP_ERR_UNKNOWN,
  REP_ERR_UNSUP, REP_INFO, REP_META_CONTEXT, REP_SERVER,
} from '../protocol/constants.js';
import { NbdError, type ErrnoCode } from '../protocol/errors.js';
import {
  decodeExportNameReply, decodeGreetingPrefix, decodeOldstyleHandshake,
  encodeClientFlags, exportNameReplySize,
} from '../protocol/handshake.js';
import {
  buildOption, decodeErrorText, decodeOptionReplyHeader, decodeRepInfo, decodeRepMetaContext, decodeRepServer,
  encodeExportNamePayload, encodeInfoRequestPayload, encodeMetaContextPayload, isErrorReply, optionName,
  optionReplyName,
} from '../protocol/options.js';
import { closedAfterHandshake } from '../tls/handshake-errors.js';
import type { ClientTlsOptions, ClientTlsUpgrade } from '../tls/types.js';
import { processLog, type ConnectionLog } from './logger.js';
import { makeExportInfo, type BlockSizes } from './export-info.js';
import { HandshakeIO } from './handshake-io.js';
import type { ExportInfo, ExportListing, Protocol } from './types.js';


/** Largest option reply payload we accept: the spec's strings are at most 4 KiB. */
const MAX_OPTION_REPLY = 16 * 1024 * 1024;

const OPTION_ERROR_CODES: Record<number, ErrnoCode> = {
  [REP_ERR_UNSUP]: 'ENOTSUP',
  [REP_ERR_POLICY]: 'EPERM',
  [REP_ERR_INVALID]: 'EINVAL',
  [REP_ERR_PLATFORM]: 'ENOTSUP',
  [REP_ERR_TLS_REQD]: 'EPERM',
  [REP_ERR_UNKNOWN]: 'ENOENT',
  [REP_ERR_SHUTDOWN]: 'ESHUTDOWN',
  [REP_ERR_BLOCK_SIZE_REQD]: 'EINVAL',
  [REP_ERR_TOO_BIG]: 'ERANGE',
};

/** An option the server refused; `replyType` keeps the NBD_REP_ERR_* value. */
export class OptionError extends NbdError {
  readonly replyType: number;
  constructor(option: number, replyType: number, text: string) {
    super(
      OPTION_ERROR_CODES[replyType] ?? 'EINVAL',
      `${optionName(option)}: server replied ${optionReplyName(replyType)}${text ? `: ${text}` : ''}`,
      text ? { serverMessage: text } : undefined,
    );
    this.name = 'NbdError';
    this.replyType = replyType;
  }
}

interface OptionReply {
  type: number;
  payload: Buffer;
}

export interface NegotiationResult {
  export: ExportInfo;
  /** Bytes that arrived after the handshake, for the transmission reader. */
  leftover: Buffer[];
}

export class Negotiator {
  io: HandshakeIO;
  protocol: Protocol = 'newstyle-fixed';
  noZeroes = false;
  tls = false;
  structuredReplies = false;
  extendedHeaders = false;
  /** Negotiated meta contexts: wire id -> name. */
  contexts = new Map<number, string>();
  /** Where this connection's debug messages go. */
  log: ConnectionLog = processLog;
  /** Handshake flags the client may answer with (ClientOptions.handshakeFlags). */
  allowFixedNewstyle = true;
  allowNoZeroes = true;
  /**
   * TLS is required (ClientTlsOptions.mode 'require'): a server that cannot offer STARTTLS
   * (oldstyle, plain newstyle) is refused before anything else is sent, so nothing that
   * names an export or carries data crosses the wire in clear.
   */
  tlsRequired = false;
  /** Ask for NBD_INFO_BLOCK_SIZE with GO / INFO (ClientOptions.requestBlockSize). */
  requestBlockSize = true;
  /** Set by oldstyle servers, which send the export facts with the greeting. */
  oldstyleExport: ExportInfo | undefined;

  constructor(io: HandshakeIO) {
    this.io = io;
  }

  /** Reads the greeting and answers with client flags. After this, options may be sent. */
  async greet(): Promise<void> {
    const prefix = await this.io.read(16);
    this.io.stats.chunksReceived++;
    const style = decodeGreetingPrefix(prefix);
    if (style === 'oldstyle') {
      const rest = await this.io.read(OLDSTYLE_HANDSHAKE_SIZE - 16);
      const full = Buffer.concat([prefix, rest]);
      const h = decodeOldstyleHandshake(full);
      if (this.tlsRequired) throw noTls('the server speaks oldstyle, which has no TLS');
      this.protocol = 'oldstyle';
      this.oldstyleExport = makeExportInfo({ exportName: '', size: h.size, exactSize: h.exactSize, transmissionFlags: h.flags & 0xffff });
      this.log.debug(() => `oldstyle server: size ${h.size}, flags 0x${h.flags.toString(16)}`);
      return;
    }
    const hflags = (await this.io.read(2)).readUInt16BE(0);
    this.protocol = hflags & FLAG_FIXED_NEWSTYLE && this.allowFixedNewstyle ? 'newstyle-fixed' : 'newstyle';
    this.noZeroes = (hflags & FLAG_NO_ZEROES) !== 0 && this.allowNoZeroes;
    if (this.tlsRequired && this.protocol !== 'newstyle-fixed') {
      // STARTTLS is an option, and options need fixed newstyle on both sides.
      throw noTls(hflags & FLAG_FIXED_NEWSTYLE ? 'fixed newstyle is turned off (handshakeFlags), so STARTTLS cannot be sent'
        : 'the server speaks plain newstyle (no NBD_FLAG_FIXED_NEWSTYLE), so it has no STARTTLS');
    }
    const cflags = (this.protocol === 'newstyle-fixed' ? FLAG_C_FIXED_NEWSTYLE : 0) | (this.noZeroes ? FLAG_C_NO_ZEROES : 0);
    const b = Buffer.alloc(4);
    encodeClientFlags(b, 0, cflags);
    this.io.write(b);
    this.log.debug(() => `${this.protocol} server, handshake flags 0x${hflags.toString(16)}, sent client flags 0x${cflags.toString(16)}`);
  }

  get canHaggle(): boolean {
    return this.protocol === 'newstyle-fixed';
  }

  private send(option: number, payload?: Uint8Array): void {
    this.log.debug(() => `sending ${optionName(option)}${payload?.length ? ` (${payload.length} bytes)` : ''}`);
    this.io.write(buildOption(option, payload));
  }

  private async reply(option: number): Promise<OptionReply> {
    const h = decodeOptionReplyHeader(await this.io.read(OPTION_REPLY_HEADER_SIZE));
    this.io.stats.chunksReceived++;
    if (h.option !== option) {
      throw new NbdError('EPROTO', `server answered ${optionName(h.option)} to ${optionName(option)}`);
    }
    if (h.length > MAX_OPTION_REPLY) {
      throw new NbdError('EPROTO', `${optionName(option)}: reply payload of ${h.length} bytes is too large`);
    }
    const payload = h.length > 0 ? await this.io.read(h.length) : Buffer.alloc(0);
    this.log.debug(() => `${optionName(option)}: ${optionReplyName(h.type)} (${h.length} bytes)`);
    return { type: h.type, payload };
  }

  private refuse(option: number, r: OptionReply): OptionError {
    return new OptionError(option, r.type, decodeErrorText(r.payload));
  }

  private unexpected(option: number, r: OptionReply): NbdError {
    return new NbdError('EPROTO', `${optionName(option)}: unexpected ${optionReplyName(r.type)}`);
  }

  private requireFixed(option: number): void {
    if (!this.canHaggle) {
      throw new NbdError('ENOTSUP', `${optionName(option)}: server does not support fixed newstyle options (${this.protocol})`);
    }
  }

  /** Sends an option whose only success reply is ACK; resolves true on ACK, false on a refusal. */
  private async simpleOption(option: number): Promise<boolean> {
    this.requireFixed(option);
    this.send(option);
    const r = await this.reply(option);
    if (r.type === REP_ACK) return true;
    if (isErrorReply(r.type)) {
      this.log.debug(() => this.refuse(option, r).message);
      return false;
    }
    throw this.unexpected(option, r);
  }

  /**
   * STARTTLS then the TLS handshake. Returns false when the server refused (the caller decides
   * between plaintext and failure); throws if the upgrade itself fails.
   */
  async startTls(options: ClientTlsOptions): Promise<boolean> {
    if (this.tls) throw new NbdError('EINVAL', 'NBD_OPT_STARTTLS: TLS is already negotiated');
    this.requireFixed(OPT_STARTTLS);
    this.send(OPT_STARTTLS);
    const r = await this.reply(OPT_STARTTLS);
    if (isErrorReply(r.type)) {
      this.log.debug(() => this.refuse(OPT_STARTTLS, r).message);
      return false;
    }
    if (r.type !== REP_ACK) throw this.unexpected(OPT_STARTTLS, r);
    if (this.io.pending > 0) throw new NbdError('EPROTO', 'server sent plaintext after acknowledging NBD_OPT_STARTTLS');
    const plain = this.io.stream;
    this.io.detach();
    const mod = (await import('../tls/client.js')) as { upgradeClientTls: ClientTlsUpgrade };
    const secure = await mod.upgradeClientTls(plain, options);
    this.io = new HandshakeIO(secure, closedAfterHandshake(secure, options.pskFile !== undefined), this.io.stats);
    this.tls = true;
    this.log.debug(() => 'TLS handshake complete');
    return true;
  }

  async extendedHeadersOption(): Promise<boolean> {
    const ok = await this.simpleOption(OPT_EXTENDED_HEADERS);
    if (ok) {
      this.extendedHeaders = true;
      this.structuredReplies = true;
    }
    return ok;
  }

  async structuredReplyOption(): Promise<boolean> {
    const ok = await this.simpleOption(OPT_STRUCTURED_REPLY);
    if (ok) this.structuredReplies = true;
    return ok;
  }

  /** NBD_OPT_LIST: every export the server offers. */
  async list(): Promise<ExportListing[]> {
    this.requireFixed(OPT_LIST);
    this.send(OPT_LIST);
    const out: ExportListing[] = [];
    for (;;) {
      const r = await this.reply(OPT_LIST);
      if (r.type === REP_SERVER) out.push(decodeRepServer(r.payload));
      else if (r.type === REP_ACK) return out;
      else if (isErrorReply(r.type)) throw this.refuse(OPT_LIST, r);
      else throw this.unexpected(OPT_LIST, r);
    }
  }

  /** LIST_META_CONTEXT (names only) or SET_META_CONTEXT (also records the ids). */
  async metaContextOption(set: boolean, exportName: string, queries: readonly string[]): Promise<Map<number, string>> {
    const option = set ? OPT_SET_META_CONTEXT : OPT_LIST_META_CONTEXT;
    this.requireFixed(option);
    if (set && !this.structuredReplies) {
      throw new NbdError('ENOTSUP', `${optionName(option)}: structured replies were not negotiated`);
    }
    this.send(option, encodeMetaContextPayload(exportName, queries));
    const found = new Map<number, string>();
    for (;;) {
      const r = await this.reply(option);
      if (r.type === REP_META_CONTEXT) {
        const c = decodeRepMetaContext(r.payload);
        // LIST replies carry no real ids (servers send 0 for all): key them by position there.
        found.set(set ? c.id : found.size, c.name);
      } else if (r.type === REP_ACK) {
        break;
      } else if (isErrorReply(r.type)) {
        throw this.refuse(option, r);
      } else {
        throw this.unexpected(option, r);
      }
    }
    if (set) this.contexts = found;
    return found;
  }

  /**
   * NBD_OPT_INFO or NBD_OPT_GO. Returns the export facts; after GO the connection is in
   * transmission. A server without GO support (ERR_UNSUP) gets NBD_OPT_EXPORT_NAME instead.
   */
  async infoOrGo(go: boolean, exportName: string, requestNames = true): Promise<ExportInfo> {
    const option = go ? OPT_GO : OPT_INFO;
    if (!this.canHaggle) {
      if (!go) throw new NbdError('ENOTSUP', `NBD_OPT_INFO: server does not support it (${this.protocol})`);
      return this.exportNameOption(exportName);
    }
    const wanted = [...(requestNames ? [INFO_NAME, INFO_DESCRIPTION] : []), ...(this.requestBlockSize ? [INFO_BLOCK_SIZE] : [])];
    this.send(option, encodeInfoRequestPayload(exportName, wanted));
    let size: number | undefined;
    let exactSize: bigint | undefined;
    let tflags = 0;
    let canonicalName: string | undefined;
    let description: string | undefined;
    let blockSizes: BlockSizes | undefined;
    for (;;) {
      const r = await this.reply(option);
      if (r.type === REP_INFO) {
        const item = decodeRepInfo(r.payload);
        switch (item.type) {
          case INFO_EXPORT: size = item.size; exactSize = item.exactSize; tflags = item.transmissionFlags; break;
          case INFO_NAME: canonicalName = item.name; break;
          case INFO_DESCRIPTION: description = item.description; break;
          case INFO_BLOCK_SIZE:
            blockSizes = { minimum: item.minimum, preferred: item.preferred, maximum: item.maximum };
            break;
          default: break;
        }
      } else if (r.type === REP_ACK) {
        if (size === undefined) throw new NbdError('EPROTO', `${optionName(option)}: server did not send NBD_INFO_EXPORT`);
        const facts = { exportName, size, exactSize, transmissionFlags: tflags, canonicalName, description, blockSizes };
        return makeExportInfo(facts);
      } else if (isErrorReply(r.type)) {
        if (r.type === REP_ERR_UNSUP && go) {
          this.log.debug(() => 'server lacks NBD_OPT_GO, falling back to NBD_OPT_EXPORT_NAME');
          return this.exportNameOption(exportName);
        }
        throw this.refuse(option, r);
      } else {
        throw this.unexpected(option, r);
      }
    }
  }

  /** NBD_OPT_EXPORT_NAME: ends the handshake; a server that dislikes the name just hangs up. */
  async exportNameOption(exportName: string): Promise<ExportInfo> {
    this.send(OPT_EXPORT_NAME, encodeExportNamePayload(exportName));
    let reply: Buffer;
    try {
      reply = await this.io.read(exportNameReplySize(this.noZeroes));
      this.io.stats.chunksReceived++;
    } catch (err) {
      if (err instanceof NbdError && err.code === 'ECONNRESET') {
        throw new NbdError('ENOENT', `NBD_OPT_EXPORT_NAME: server closed the connection (no export '${exportName}'?)`);
      }
      throw err;
    }
    const r = decodeExportNameReply(reply);
    return makeExportInfo({ exportName, size: r.size, exactSize: r.exactSize, transmissionFlags: r.transmissionFlags });
  }

  /** NBD_OPT_ABORT: ends the handshake politely; the server may hang up without replying. */
  async abort(): Promise<void> {
    if (!this.canHaggle) return;
    this.send(OPT_ABORT);
    try {
      await this.reply(OPT_ABORT);
    } catch {
      // A server may close without an ACK, which is fine for an abort.
    }
  }
}

/** TLS is required and this server cannot give it: the one error for every such case. */
export function noTls(why: string): NbdError {
  return new NbdError('EPERM', `handshake: ${why}, and TLS is required`);
}

export const DEFAULT_META_CONTEXTS = [CONTEXT_BASE_ALLOCATION];
