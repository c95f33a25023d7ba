// What the handshake of one connection has settled so far, what it hands to the transmission
// phase, and the small rules both the option loop and the option handlers use.
import type { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import { ReplyStyle } from '../protocol/replies.js';
import { ExactReader } from '../stream/exact-reader.js';
import { lookupExport } from './backend-hooks.js';
import type { ResolvedExport, SessionConfig } from './options.js';

/** The outcome of a handshake: everything the transmission phase starts from. */
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

/** What the options so far have settled (STARTTLS resets it all). */
export interface HandshakeState {
  stream: Duplex;
  reader: ExactReader;
  structured: boolean;
  extended: boolean;
  /** Export name the last SET_META_CONTEXT was about, and the contexts it selected. */
  metaExport: string | undefined;
  metaSelected: string[];
  tls: boolean;
}

/** Raised to end the session without a reply (abort, protocol violation). */
export class EndSession extends Error {}

/** Exact-length reads of what the client sends during the handshake. */
export function clientReader(stream: Duplex): ExactReader {
  return new ExactReader(stream, {
    endError: () => new NbdError('ECONNRESET', 'client closed the connection'),
    streamError: (err) => new NbdError('ECONNRESET', `connection error: ${err.message}`, { cause: err }),
  });
}

export function newHandshakeState(stream: Duplex): HandshakeState {
  return { stream, reader: clientReader(stream), structured: false, extended: false, metaExport: undefined, metaSelected: [], tls: false };
}

/** Forgets what a SET_META_CONTEXT selected (a new SET, or STARTTLS). */
export function clearMetaSelection(st: HandshakeState): void {
  st.metaExport = undefined;
  st.metaSelected = [];
}

export function styleOf(st: HandshakeState): ReplyStyle {
  return st.extended ? ReplyStyle.Extended : st.structured ? ReplyStyle.Structured : ReplyStyle.Simple;
}

/** Contexts count only when they were selected for the export the client now opens. */
export function selectedContexts(st: HandshakeState, config: SessionConfig, exp: ResolvedExport): string[] {
  if (st.metaExport === undefined || !st.structured) return [];
  return lookupExport(config, st.metaExport)?.name === exp.name ? st.metaSelected : [];
}

/** Block status may name the contexts it wants (the payload form): extended headers and contexts selected for `exp`. */
export function statusPayload(st: HandshakeState, config: SessionConfig, exp: ResolvedExport): boolean {
  return st.extended && selectedContexts(st, config, exp).length > 0;
}

/** The handshake is over: the client uses `exp` from the next byte on. */
export function enterTransmission(
  st: HandshakeState, config: SessionConfig, exp: ResolvedExport, style: ReplyStyle, flags: number,
): Negotiated {
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
