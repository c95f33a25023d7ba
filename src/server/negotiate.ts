// The handshake phase of one connection: greeting, option haggling (fixed newstyle, plain
// newstyle or oldstyle), STARTTLS, until the client picks an export or goes away.
import type { Duplex } from 'node:stream';
import {
  CONTEXT_BASE_ALLOCATION, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES,
  INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_EXPORT, INFO_NAME, OLDSTYLE_HANDSHAKE_SIZE, OPTION_HEADER_SIZE,
  OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS, OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT,
  OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_INVALID, REP_ERR_TLS_REQD,
  REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_INFO, REP_META_CONTEXT, REP_SERVER,
} from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import {
  buildOptionReply, decodeInfoRequestPayload, decodeMetaContextPayload, decodeOptionHeader, encodeErrorText,
  encodeRepInfo, encodeRepMetaContext, encodeRepServer, optionName,
} from '../protocol/options.js';
import {
  CLIENT_FLAGS_SIZE, NEWSTYLE_GREETING_SIZE, encodeExportNameReply, encodeNewstyleGreeting,
  encodeOldstyleHandshake, exportNameReplySize,
} from '../protocol/handshake.js';
import { ExactReader } from '../stream/exact-reader.js';
import type { ServerTlsUpgrade } from '../tls/types.js';
import {
  closeOpened, descriptionOf, listExports, lookupExport, matchMetaContexts, openExport, openFailureReply,
} from './backend-hooks.js';
import { transmissionFlags } from './flags.js';
import { MAX_PAYLOAD, PREFERRED_BLOCK, type ResolvedExport, type SessionConfig } from './options.js';
import { ReplyStyle } from '../protocol/replies.js';

/** Option payloads above this are not read: the client is broken or hostile. */
const MAX_OPTION_LENGTH = 64 * 1024;

export interface Negotiated {
  stream: Duplex;
  /** Bytes that arrived after the last option; the transmission parser starts with them. */
  leftover: Buffer[];
  export: ResolvedExport;
  style: ReplyStyle;
  /** Meta contexts the client selected for this export; context id i + 1 is metaContexts[i]. */
  metaContexts: string[];
  transmissionFlags: number;
  tls: boolean;
}

interface State {
  stream: Duplex;
  reader: ExactReader;
  structured: boolean;
  extended: boolean;
  /** Export name the last SET_META_CONTEXT was about, and the contexts it selected. */
  metaExport: string | undefined;
  metaSelected: string[];
  tls: boolean;
}

/** Exact-length reads of what the client sends during the handshake. */
function clientReader(stream: Duplex): ExactReader {
  return new ExactReader(stream, {
    endError: () => new NbdError('ECONNRESET', 'client closed the connection'),
    streamError: (err) => new NbdError('ECONNRESET', `connection error: ${err.message}`, { cause: err }),
  });
}

/** Raised to end the session without a reply (abort, protocol violation). */
export class EndSession extends Error {}

export async function negotiate(stream: Duplex, config: SessionConfig): Promise<Negotiated> {
  if (config.oldstyle) return oldstyle(stream, config);
  const reader = clientReader(stream);
  try {
    const greeting = Buffer.alloc(NEWSTYLE_GREETING_SIZE);
    encodeNewstyleGreeting(greeting, 0, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    stream.write(greeting);
    const clientFlags = (await reader.read(CLIENT_FLAGS_SIZE)).readUInt32BE(0);
    if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) !== 0) {
      throw new EndSession(`client sent unknown handshake flags 0x${clientFlags.toString(16)}`);
    }
    const fixed = (clientFlags & FLAG_C_FIXED_NEWSTYLE) !== 0;
    const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;
    const st: State = { stream, reader, structured: false, extended: false, metaExport: undefined, metaSelected: [], tls: false };
    for (;;) {
      const result = await oneOption(st, config, fixed, noZeroes);
      if (result) return result;
    }
  } catch (err) {
    reader.detach();
    throw err;
  }
}

async function oldstyle(stream: Duplex, config: SessionConfig): Promise<Negotiated> {
  let exp: ResolvedExport;
  try {
    exp = await openExport(config.defaultExport, []);
  } catch (err) {
    throw new EndSession(`cannot open the export: ${(err as Error).message}`);
  }
  const flags = transmissionFlags(exp, false);
  const buf = Buffer.alloc(OLDSTYLE_HANDSHAKE_SIZE);
  encodeOldstyleHandshake(buf, 0, { size: exp.backend.size, flags });
  stream.write(buf);
  return { stream, leftover: [], export: exp, style: ReplyStyle.Simple, metaContexts: [], transmissionFlags: flags, tls: false };
}

/** Handles one option; returns the outcome once the client entered transmission. */
async function oneOption(st: State, config: SessionConfig, fixed: boolean, noZeroes: boolean): Promise<Negotiated | undefined> {
  let header;
  try {
    header = decodeOptionHeader(await st.reader.read(OPTION_HEADER_SIZE));
  } catch (err) {
    if (err instanceof NbdError && err.code === 'EPROTO') throw new EndSession(`option: ${err.message}`);
    throw err;
  }
  const { option, length } = header;
  if (length > MAX_OPTION_LENGTH) throw new EndSession(`${optionName(option)} with absurd length ${length}`);
  const data = length > 0 ? await st.reader.read(length) : Buffer.alloc(0);
  config.log?.(`option ${optionName(option)} (${length} bytes)`);

  const reply = (type: number, payload?: Uint8Array): void => {
    st.stream.write(buildOptionReply(option, type, payload));
  };
  const error = (type: number, message: string): undefined => {
    config.log?.(`option ${optionName(option)}: ${message}`);
    reply(type, encodeErrorText(message));
    return undefined;
  };

  // A plain-newstyle client may only name an export: it cannot understand option replies.
  if (!fixed && option !== OPT_EXPORT_NAME) throw new EndSession(`${optionName(option)} from a client without fixed newstyle`);

  const tlsRequired = config.tls?.mode === 'require' && !st.tls;
  if (tlsRequired && option !== OPT_STARTTLS && option !== OPT_ABORT) {
    if (option === OPT_EXPORT_NAME) throw new EndSession('NBD_OPT_EXPORT_NAME before the TLS upgrade the server requires');
    return error(REP_ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first');
  }

  switch (option) {
    case OPT_EXPORT_NAME: {
      const name = data.toString('utf8');
      const found = findExport(config, name);
      if (!found) throw new EndSession(`client asked for unknown export '${name}'`);
      let exp: ResolvedExport;
      try {
        exp = await openExport(found, selectedContexts(st, config, found));
      } catch (err) {
        throw new EndSession(`cannot open export '${name}': ${(err as Error).message}`);
      }
      const style = styleOf(st);
      const flags = transmissionFlags(exp, style !== ReplyStyle.Simple);
      const out = Buffer.alloc(exportNameReplySize(noZeroes));
      encodeExportNameReply(out, 0, { size: exp.backend.size, transmissionFlags: flags }, noZeroes);
      st.stream.write(out);
      return finish(st, config, exp, style, flags);
    }
    case OPT_ABORT:
      reply(REP_ACK);
      throw new EndSession('client aborted the handshake');
    case OPT_LIST: {
      if (length !== 0) return error(REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
      let exports;
      try {
        exports = await listExports(config);
      } catch (err) {
        return error(openFailureReply(err), `cannot list the exports: ${(err as Error).message}`);
      }
      for (const exp of exports) reply(REP_SERVER, encodeRepServer(exp.name, exp.description));
      reply(REP_ACK);
      return undefined;
    }
    case OPT_STARTTLS:
      return startTls(st, config, length, error, reply);
    case OPT_INFO:
    case OPT_GO: {
      let request;
      try {
        request = decodeInfoRequestPayload(data);
      } catch (err) {
        return error(REP_ERR_INVALID, `malformed ${optionName(option)}: ${(err as Error).message}`);
      }
      const found = findExport(config, request.exportName);
      if (!found) return error(REP_ERR_UNKNOWN, `unknown export '${request.exportName}'`);
      let exp: ResolvedExport;
      try {
        exp = await openExport(found, option === OPT_GO ? selectedContexts(st, config, found) : []);
      } catch (err) {
        return error(openFailureReply(err), `cannot open export '${request.exportName}': ${(err as Error).message}`);
      }
      const style = styleOf(st);
      const flags = transmissionFlags(exp, style !== ReplyStyle.Simple);
      reply(REP_INFO, encodeRepInfo({ type: INFO_EXPORT, size: exp.backend.size, transmissionFlags: flags }));
      if (request.requests.includes(INFO_NAME)) reply(REP_INFO, encodeRepInfo({ type: INFO_NAME, name: exp.name }));
      const description = descriptionOf(exp);
      if (request.requests.includes(INFO_DESCRIPTION) && description !== undefined) {
        reply(REP_INFO, encodeRepInfo({ type: INFO_DESCRIPTION, description }));
      }
      // Block sizes go out unasked: our limits are the defaults, so clients that ignore them are fine.
      const bs = exp.backend.blockSize === undefined ? { minimum: 1, preferred: PREFERRED_BLOCK, maximum: MAX_PAYLOAD } : exp.backend.blockSize;
      if (bs) reply(REP_INFO, encodeRepInfo({ type: INFO_BLOCK_SIZE, ...bs }));
      reply(REP_ACK);
      if (option === OPT_INFO) {
        await closeOpened(exp, found.backend);
        return undefined;
      }
      return finish(st, config, exp, style, flags);
    }
    case OPT_STRUCTURED_REPLY:
      if (!config.structuredReplies) return error(REP_ERR_UNSUP, 'structured replies are disabled on this server');
      if (length !== 0) return error(REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
      st.structured = true;
      reply(REP_ACK);
      return undefined;
    case OPT_EXTENDED_HEADERS:
      if (!config.extendedHeaders || !config.structuredReplies) return error(REP_ERR_UNSUP, 'extended headers are disabled on this server');
      if (length !== 0) return error(REP_ERR_INVALID, 'NBD_OPT_EXTENDED_HEADERS takes no data');
      // Extended headers imply structured replies.
      st.extended = true;
      st.structured = true;
      reply(REP_ACK);
      return undefined;
    case OPT_LIST_META_CONTEXT:
    case OPT_SET_META_CONTEXT: {
      const isSet = option === OPT_SET_META_CONTEXT;
      if (isSet) {
        // The spec: a failed SET also clears what an earlier one selected.
        st.metaExport = undefined;
        st.metaSelected = [];
      }
      if (!st.structured) return error(REP_ERR_INVALID, `${optionName(option)} needs structured replies first`);
      let request;
      try {
        request = decodeMetaContextPayload(data);
      } catch (err) {
        return error(REP_ERR_INVALID, `malformed ${optionName(option)}: ${(err as Error).message}`);
      }
      const exp = findExport(config, request.exportName);
      if (!exp) return error(REP_ERR_UNKNOWN, `unknown export '${request.exportName}'`);
      let matches;
      try {
        matches = await matchMetaContexts(exp, request.queries, isSet);
      } catch (err) {
        return error(openFailureReply(err), `cannot list the meta contexts: ${(err as Error).message}`);
      }
      // Context ids are positions in the selection, so a SET reply's ids are 1, 2, ...
      matches.forEach((name, i) => reply(REP_META_CONTEXT, encodeRepMetaContext(isSet ? i + 1 : 0, name)));
      if (isSet) {
        st.metaExport = request.exportName;
        st.metaSelected = matches;
      }
      reply(REP_ACK);
      return undefined;
    }
    default:
      return error(REP_ERR_UNSUP, `${optionName(option)} is not supported`);
  }
}

async function startTls(
  st: State, config: SessionConfig, length: number,
  error: (type: number, message: string) => undefined, reply: (type: number) => void,
): Promise<undefined> {
  if (!config.tls || config.tls.mode === 'off') return error(REP_ERR_UNSUP, 'TLS is not configured on this server');
  if (length !== 0) return error(REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
  if (st.tls) return error(REP_ERR_INVALID, 'TLS is already active');
  reply(REP_ACK);
  const leftover = st.reader.detach();
  // The client waits for our ACK before its ClientHello, so nothing should be buffered; if it
  // is, it belongs to the TLS layer.
  for (let i = leftover.length - 1; i >= 0; i--) st.stream.unshift(leftover[i]!);
  // A literal specifier, so esbuild puts the TLS module into the nbdserve bundle; it is still
  // only evaluated when a client asks for STARTTLS.
  const mod: { upgradeServerTls: ServerTlsUpgrade } = await import('../tls/server.js');
  let secure: Duplex;
  try {
    secure = await mod.upgradeServerTls(st.stream, config.tls);
  } catch (err) {
    throw new EndSession(`TLS handshake failed: ${(err as Error).message}`);
  }
  config.log?.('TLS session established');
  // Nothing negotiated in plain text survives the upgrade.
  st.stream = secure;
  st.reader = clientReader(secure);
  st.structured = false;
  st.extended = false;
  st.metaExport = undefined;
  st.metaSelected = [];
  st.tls = true;
  return undefined;
}

function styleOf(st: State): ReplyStyle {
  return st.extended ? ReplyStyle.Extended : st.structured ? ReplyStyle.Structured : ReplyStyle.Simple;
}

const findExport = lookupExport;

/** Contexts count only when they were selected for the export the client now opens. */
function selectedContexts(st: State, config: SessionConfig, exp: ResolvedExport): string[] {
  if (st.metaExport === undefined || !st.structured) return [];
  return findExport(config, st.metaExport)?.name === exp.name ? st.metaSelected : [];
}

function finish(st: State, config: SessionConfig, exp: ResolvedExport, style: ReplyStyle, flags: number): Negotiated {
  return {
    stream: st.stream,
    leftover: st.reader.detach(),
    export: exp,
    style,
    metaContexts: style !== ReplyStyle.Simple ? selectedContexts(st, config, exp) : [],
    transmissionFlags: flags,
    tls: st.tls,
  };
}
