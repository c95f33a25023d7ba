// One handler per handshake option, in a table from option code to handler: each reads its
// option's data, answers with option replies, updates the handshake state, and returns the
// outcome when the client enters transmission. negotiate.ts only reads options and looks up.
import type { Duplex } from 'node:stream';
import {
  INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_EXPORT, INFO_NAME, OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS,
  OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY,
  REP_ACK, REP_ERR_INVALID, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_INFO, REP_META_CONTEXT, REP_SERVER,
} from '../protocol/constants.js';
import { encodeExportNameReply, exportNameReplySize } from '../protocol/handshake.js';
import {
  decodeInfoRequestPayload, decodeMetaContextPayload, encodeRepInfo, encodeRepMetaContext, encodeRepServer,
  optionName,
} from '../protocol/options.js';
import { ReplyStyle } from '../protocol/replies.js';
import type { ServerTlsUpgrade } from '../tls/types.js';
import {
  closeOpened, descriptionOf, listExports, lookupExport, matchMetaContexts, openExport, openFailureReply,
} from './backend-hooks.js';
import { transmissionFlags } from './flags.js';
import {
  EndSession, clearMetaSelection, clientReader, enterTransmission, selectedContexts, statusPayload, styleOf,
  type HandshakeState, type Negotiated,
} from './handshake-state.js';
import { MAX_PAYLOAD, PREFERRED_BLOCK, type ResolvedExport, type SessionConfig } from './options.js';

/** One option as received, with the means to answer it. */
export interface OptionCall {
  st: HandshakeState;
  config: SessionConfig;
  option: number;
  data: Buffer;
  /** The client asked for the short NBD_OPT_EXPORT_NAME reply (NO_ZEROES). */
  noZeroes: boolean;
  reply(type: number, payload?: Uint8Array): void;
  /** Sends an error reply carrying `message` (and logs it); undefined, so handlers can return it. */
  error(type: number, message: string): undefined;
}

export type OptionHandler = (o: OptionCall) => Promise<Negotiated | undefined> | Negotiated | undefined;

/** Options that carry no data must come without any. */
function noData(o: OptionCall): boolean {
  if (o.data.length === 0) return true;
  o.error(REP_ERR_INVALID, `${optionName(o.option)} takes no data`);
  return false;
}

/** The old way in: no replies, and a failure can only end the connection. */
async function exportName(o: OptionCall): Promise<Negotiated> {
  const { st, config } = o;
  const name = o.data.toString('utf8');
  const found = lookupExport(config, name);
  if (!found) throw new EndSession(`client asked for unknown export '${name}'`);
  let exp: ResolvedExport;
  try {
    exp = await openExport(found, selectedContexts(st, config, found));
  } catch (err) {
    throw new EndSession(`cannot open export '${name}': ${(err as Error).message}`);
  }
  const style = styleOf(st);
  const flags = transmissionFlags(exp, style !== ReplyStyle.Simple, statusPayload(st, config, exp));
  const out = Buffer.alloc(exportNameReplySize(o.noZeroes));
  encodeExportNameReply(out, 0, { size: exp.backend.size, transmissionFlags: flags }, o.noZeroes);
  st.stream.write(out);
  return enterTransmission(st, config, exp, style, flags);
}

function abort(o: OptionCall): never {
  o.reply(REP_ACK);
  throw new EndSession('client aborted the handshake');
}

async function list(o: OptionCall): Promise<undefined> {
  if (!noData(o)) return undefined;
  let exports;
  try {
    exports = await listExports(o.config);
  } catch (err) {
    return o.error(openFailureReply(err), `cannot list the exports: ${(err as Error).message}`);
  }
  for (const exp of exports) o.reply(REP_SERVER, encodeRepServer(exp.name, exp.description));
  o.reply(REP_ACK);
  return undefined;
}

async function startTls(o: OptionCall): Promise<undefined> {
  const { st, config } = o;
  if (!config.tls || config.tls.mode === 'off') return o.error(REP_ERR_UNSUP, 'TLS is not configured on this server');
  if (!noData(o)) return undefined;
  if (st.tls) return o.error(REP_ERR_INVALID, 'TLS is already active');
  o.reply(REP_ACK);
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
  clearMetaSelection(st);
  st.tls = true;
  return undefined;
}

/** NBD_OPT_INFO describes an export; NBD_OPT_GO describes it and enters transmission. */
async function infoOrGo(o: OptionCall): Promise<Negotiated | undefined> {
  const { st, config, option } = o;
  let request;
  try {
    request = decodeInfoRequestPayload(o.data);
  } catch (err) {
    return o.error(REP_ERR_INVALID, `malformed ${optionName(option)}: ${(err as Error).message}`);
  }
  const found = lookupExport(config, request.exportName);
  if (!found) return o.error(REP_ERR_UNKNOWN, `unknown export '${request.exportName}'`);
  let exp: ResolvedExport;
  try {
    exp = await openExport(found, option === OPT_GO ? selectedContexts(st, config, found) : []);
  } catch (err) {
    return o.error(openFailureReply(err), `cannot open export '${request.exportName}': ${(err as Error).message}`);
  }
  const style = styleOf(st);
  const flags = transmissionFlags(exp, style !== ReplyStyle.Simple, statusPayload(st, config, exp));
  o.reply(REP_INFO, encodeRepInfo({ type: INFO_EXPORT, size: exp.backend.size, transmissionFlags: flags }));
  if (request.requests.includes(INFO_NAME)) o.reply(REP_INFO, encodeRepInfo({ type: INFO_NAME, name: exp.name }));
  const description = descriptionOf(exp);
  if (request.requests.includes(INFO_DESCRIPTION) && description !== undefined) {
    o.reply(REP_INFO, encodeRepInfo({ type: INFO_DESCRIPTION, description }));
  }
  // Block sizes go out unasked: our limits are the defaults, so clients that ignore them are fine.
  const bs = exp.backend.blockSize === undefined ? { minimum: 1, preferred: PREFERRED_BLOCK, maximum: MAX_PAYLOAD } : exp.backend.blockSize;
  if (bs) o.reply(REP_INFO, encodeRepInfo({ type: INFO_BLOCK_SIZE, ...bs }));
  o.reply(REP_ACK);
  if (option === OPT_INFO) {
    await closeOpened(exp, found.backend);
    return undefined;
  }
  return enterTransmission(st, config, exp, style, flags);
}

function structuredReply(o: OptionCall): undefined {
  if (!o.config.structuredReplies) return o.error(REP_ERR_UNSUP, 'structured replies are disabled on this server');
  if (!noData(o)) return undefined;
  o.st.structured = true;
  o.reply(REP_ACK);
  return undefined;
}

function extendedHeaders(o: OptionCall): undefined {
  const { config } = o;
  if (!config.extendedHeaders || !config.structuredReplies) return o.error(REP_ERR_UNSUP, 'extended headers are disabled on this server');
  if (!noData(o)) return undefined;
  // Extended headers imply structured replies.
  o.st.extended = true;
  o.st.structured = true;
  o.reply(REP_ACK);
  return undefined;
}

/** NBD_OPT_LIST_META_CONTEXT lists the contexts that match; NBD_OPT_SET_META_CONTEXT selects them. */
async function metaContext(o: OptionCall): Promise<undefined> {
  const { st, config, option } = o;
  const isSet = option === OPT_SET_META_CONTEXT;
  // The spec: a failed SET also clears what an earlier one selected.
  if (isSet) clearMetaSelection(st);
  if (!st.structured) return o.error(REP_ERR_INVALID, `${optionName(option)} needs structured replies first`);
  let request;
  try {
    request = decodeMetaContextPayload(o.data);
  } catch (err) {
    return o.error(REP_ERR_INVALID, `malformed ${optionName(option)}: ${(err as Error).message}`);
  }
  const exp = lookupExport(config, request.exportName);
  if (!exp) return o.error(REP_ERR_UNKNOWN, `unknown export '${request.exportName}'`);
  let matches;
  try {
    matches = await matchMetaContexts(exp, request.queries, isSet);
  } catch (err) {
    return o.error(openFailureReply(err), `cannot list the meta contexts: ${(err as Error).message}`);
  }
  // Context ids are positions in the selection, so a SET reply's ids are 1, 2, ...
  matches.forEach((name, i) => o.reply(REP_META_CONTEXT, encodeRepMetaContext(isSet ? i + 1 : 0, name)));
  if (isSet) {
    st.metaExport = request.exportName;
    st.metaSelected = matches;
  }
  o.reply(REP_ACK);
  return undefined;
}

/** The options this server understands; any other gets NBD_REP_ERR_UNSUP. */
export const OPTION_HANDLERS: ReadonlyMap<number, OptionHandler> = new Map<number, OptionHandler>([
  [OPT_EXPORT_NAME, exportName],
  [OPT_ABORT, abort],
  [OPT_LIST, list],
  [OPT_STARTTLS, startTls],
  [OPT_INFO, infoOrGo],
  [OPT_GO, infoOrGo],
  [OPT_STRUCTURED_REPLY, structuredReply],
  [OPT_EXTENDED_HEADERS, extendedHeaders],
  [OPT_LIST_META_CONTEXT, metaContext],
  [OPT_SET_META_CONTEXT, metaContext],
]);
