// The handshake phase of one connection: greeting, then options (fixed newstyle, plain
// newstyle or oldstyle) until the client picks an export or goes away. Each option is handled
// by its entry in OPTION_HANDLERS; this file reads options and applies the rules that hold
// for all of them.
import type { Duplex } from 'node:stream';
import {
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, OLDSTYLE_HANDSHAKE_SIZE,
  OPTION_HEADER_SIZE, OPT_ABORT, OPT_EXPORT_NAME, OPT_STARTTLS, REP_ERR_TLS_REQD, REP_ERR_UNSUP,
} from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import {
  CLIENT_FLAGS_SIZE, NEWSTYLE_GREETING_SIZE, encodeNewstyleGreeting, encodeOldstyleHandshake,
} from '../protocol/handshake.js';
import { buildOptionReply, decodeOptionHeader, encodeErrorText, optionName } from '../protocol/options.js';
import { ReplyStyle } from '../protocol/replies.js';
import { openExport } from './backend-hooks.js';
import { transmissionFlags } from './flags.js';
import { EndSession, newHandshakeState, type HandshakeState, type Negotiated } from './handshake-state.js';
import { OPTION_HANDLERS, type OptionCall } from './option-handlers.js';
import type { ResolvedExport, SessionConfig } from './options.js';

export { EndSession, type Negotiated } from './handshake-state.js';

/** Option payloads above this are not read: the client is broken or hostile. */
const MAX_OPTION_LENGTH = 64 * 1024;
/**
 * Option replies the client has not taken that we hold before reading its next option. A client
 * that sends options and never reads the replies would otherwise have the server buffer them
 * all until the handshake timeout (replies are larger than the options that ask for them).
 */
const MAX_UNREAD_REPLIES = 64 * 1024;

export async function negotiate(stream: Duplex, config: SessionConfig): Promise<Negotiated> {
  if (config.oldstyle) return oldstyle(stream, config);
  const st = newHandshakeState(stream);
  try {
    const greeting = Buffer.alloc(NEWSTYLE_GREETING_SIZE);
    encodeNewstyleGreeting(greeting, 0, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    stream.write(greeting);
    const clientFlags = (await st.reader.read(CLIENT_FLAGS_SIZE)).readUInt32BE(0);
    if ((clientFlags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) !== 0) {
      throw new EndSession(`client sent unknown handshake flags 0x${clientFlags.toString(16)}`);
    }
    const fixed = (clientFlags & FLAG_C_FIXED_NEWSTYLE) !== 0;
    const noZeroes = (clientFlags & FLAG_C_NO_ZEROES) !== 0;
    for (;;) {
      await repliesTaken(st.stream);
      const result = await oneOption(st, config, fixed, noZeroes);
      if (result) return result;
    }
  } catch (err) {
    st.reader.detach();
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

/** Waits, reading nothing more, until the client has taken most of our replies (or is gone). */
async function repliesTaken(stream: Duplex): Promise<void> {
  if (stream.writableLength <= MAX_UNREAD_REPLIES || stream.destroyed) return;
  stream.pause();
  await new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
  stream.resume();
}

/** Reads and handles one option; returns the outcome once the client entered transmission. */
async function oneOption(st: HandshakeState, config: SessionConfig, fixed: boolean, noZeroes: boolean): Promise<Negotiated | undefined> {
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

  const call: OptionCall = {
    st, config, option, data, noZeroes,
    reply: (type, payload) => {
      st.stream.write(buildOptionReply(option, type, payload));
    },
    error: (type, message) => {
      config.log?.(`option ${optionName(option)}: ${message}`);
      call.reply(type, encodeErrorText(message));
      return undefined;
    },
  };

  // A plain-newstyle client may only name an export: it cannot understand option replies.
  if (!fixed && option !== OPT_EXPORT_NAME) throw new EndSession(`${optionName(option)} from a client without fixed newstyle`);

  const tlsRequired = config.tls?.mode === 'require' && !st.tls;
  if (tlsRequired && option !== OPT_STARTTLS && option !== OPT_ABORT) {
    if (option === OPT_EXPORT_NAME) throw new EndSession('NBD_OPT_EXPORT_NAME before the TLS upgrade the server requires');
    return call.error(REP_ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first');
  }

  const handler = OPTION_HANDLERS.get(option);
  if (!handler) return call.error(REP_ERR_UNSUP, `${optionName(option)} is not supported`);
  return handler(call);
}
