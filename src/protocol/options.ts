// Option haggling: the client's option requests and their payloads, the server's option
// replies and theirs. Pure encode/decode, no I/O; used by both the client and the server.
import {
  INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_EXPORT, INFO_NAME, IHAVEOPT, OPTION_HEADER_SIZE,
  OPTION_REPLY_HEADER_SIZE, OPTION_REPLY_MAGIC, OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS,
  OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT, OPT_PEEK_EXPORT, OPT_SET_META_CONTEXT,
  OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_BLOCK_SIZE_REQD, REP_ERR_EXT_HEADER_REQD,
  REP_ERR_INVALID, REP_ERR_PLATFORM, REP_ERR_POLICY, REP_ERR_SHUTDOWN, REP_ERR_TLS_REQD,
  REP_ERR_TOO_BIG, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_FLAG_ERROR, REP_INFO, REP_META_CONTEXT,
  REP_SERVER,
} from './constants.js';
import { hex, needBytes, protocolError, readMagic64, readU64, writeMagic64, writeU64 } from './bytes.js';
import { readString32, utf8Length, writeString32 } from './strings.js';

// ---- option request header: IHAVEOPT, option u32, length u32 ----

export interface OptionHeader {
  option: number;
  length: number;
}

export function encodeOptionHeader(buf: Uint8Array, off: number, option: number, length: number): number {
  needBytes(buf, off, OPTION_HEADER_SIZE, 'option header');
  writeMagic64(buf, off, IHAVEOPT);
  (buf as Buffer).writeUInt32BE(option >>> 0, off + 8);
  (buf as Buffer).writeUInt32BE(length >>> 0, off + 12);
  return OPTION_HEADER_SIZE;
}

export function decodeOptionHeader(buf: Uint8Array, off = 0): OptionHeader {
  needBytes(buf, off, OPTION_HEADER_SIZE, 'option header');
  const magic = readMagic64(buf, off);
  if (magic !== IHAVEOPT) throw protocolError(`bad option magic ${hex(magic)}`);
  return { option: (buf as Buffer).readUInt32BE(off + 8), length: (buf as Buffer).readUInt32BE(off + 12) };
}

/** A whole option request (header + payload) in a fresh buffer: options are rare, not hot. */
export function buildOption(option: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(OPTION_HEADER_SIZE + payload.length);
  encodeOptionHeader(out, 0, option, payload.length);
  out.set(payload, OPTION_HEADER_SIZE);
  return out;
}

// ---- option payloads ----

/** NBD_OPT_EXPORT_NAME: the bare name, no length prefix. */
export function encodeExportNamePayload(name: string): Buffer {
  return Buffer.from(name, 'utf8');
}

export function decodeExportNamePayload(payload: Uint8Array): string {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
}

export interface InfoRequest {
  exportName: string;
  /** NBD_INFO_* items asked for. */
  requests: number[];
}

/** NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, u16 items. */
export function encodeInfoRequestPayload(exportName: string, requests: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(4 + utf8Length(exportName) + 2 + 2 * requests.length);
  let p = writeString32(out, 0, exportName);
  out.writeUInt16BE(requests.length, p);
  p += 2;
  for (const r of requests) {
    out.writeUInt16BE(r, p);
    p += 2;
  }
  return out;
}

export function decodeInfoRequestPayload(payload: Uint8Array): InfoRequest {
  const end = payload.length;
  const name = readString32(payload, 0, end, 'info request');
  needBytes(payload, name.next, 2, 'info request count');
  const count = (payload as Buffer).readUInt16BE(name.next);
  if (name.next + 2 + count * 2 !== end) {
    throw protocolError(`info request: ${count} items do not match payload length ${end}`);
  }
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push((payload as Buffer).readUInt16BE(name.next + 2 + 2 * i));
  return { exportName: name.value, requests };
}

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** NBD_OPT_LIST_META_CONTEXT / SET_META_CONTEXT: u32+name, u32 query count, each u32+query. */
export function encodeMetaContextPayload(exportName: string, queries: readonly string[]): Buffer {
  let size = 4 + utf8Length(exportName) + 4;
  for (const q of queries) size += 4 + utf8Length(q);
  const out = Buffer.allocUnsafe(size);
  let p = writeString32(out, 0, exportName);
  out.writeUInt32BE(queries.length, p);
  p += 4;
  for (const q of queries) p += writeString32(out, p, q);
  return out;
}

export function decodeMetaContextPayload(payload: Uint8Array): MetaContextRequest {
  const end = payload.length;
  const name = readString32(payload, 0, end, 'meta context request');
  needBytes(payload, name.next, 4, 'meta context query count');
  const count = (payload as Buffer).readUInt32BE(name.next);
  let p = name.next + 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const q = readString32(payload, p, end, 'meta context query');
    queries.push(q.value);
    p = q.next;
  }
  if (p !== end) throw protocolError('meta context request: trailing bytes after the queries');
  return { exportName: name.value, queries };
}

// ---- option reply header: magic u64, option u32, reply type u32, length u32 ----

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
}

export function encodeOptionReplyHeader(buf: Uint8Array, off: number, h: OptionReplyHeader): number {
  needBytes(buf, off, OPTION_REPLY_HEADER_SIZE, 'option reply header');
  writeMagic64(buf, off, OPTION_REPLY_MAGIC);
  (buf as Buffer).writeUInt32BE(h.option >>> 0, off + 8);
  (buf as Buffer).writeUInt32BE(h.type >>> 0, off + 12);
  (buf as Buffer).writeUInt32BE(h.length >>> 0, off + 16);
  return OPTION_REPLY_HEADER_SIZE;
}

export function decodeOptionReplyHeader(buf: Uint8Array, off = 0): OptionReplyHeader {
  needBytes(buf, off, OPTION_REPLY_HEADER_SIZE, 'option reply header');
  const magic = readMagic64(buf, off);
  if (magic !== OPTION_REPLY_MAGIC) throw protocolError(`bad option reply magic ${hex(magic)}`);
  const b = buf as Buffer;
  return { option: b.readUInt32BE(off + 8), type: b.readUInt32BE(off + 12), length: b.readUInt32BE(off + 16) };
}

/** A whole option reply (header + payload) in a fresh buffer. */
export function buildOptionReply(option: number, type: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(OPTION_REPLY_HEADER_SIZE + payload.length);
  encodeOptionReplyHeader(out, 0, { option, type, length: payload.length });
  out.set(payload, OPTION_REPLY_HEADER_SIZE);
  return out;
}

export function isErrorReply(type: number): boolean {
  return (type & REP_FLAG_ERROR) !== 0;
}

// ---- option reply payloads ----

export interface ServerListing {
  name: string;
  description: string;
}

/** NBD_REP_SERVER: u32 name length, name, then the description fills the rest. */
export function encodeRepServer(name: string, description = ''): Buffer {
  const out = Buffer.allocUnsafe(4 + utf8Length(name) + utf8Length(description));
  const p = writeString32(out, 0, name);
  out.write(description, p, 'utf8');
  return out;
}

export function decodeRepServer(payload: Uint8Array): ServerListing {
  const name = readString32(payload, 0, payload.length, 'NBD_REP_SERVER');
  return { name: name.value, description: (payload as Buffer).toString('utf8', name.next, payload.length) };
}

export type InfoItem =
  | { type: typeof INFO_EXPORT; size: number; exactSize?: bigint; transmissionFlags: number }
  | { type: typeof INFO_NAME; name: string }
  | { type: typeof INFO_DESCRIPTION; description: string }
  | { type: typeof INFO_BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { type: 'unknown'; infoType: number };

/** NBD_REP_INFO payload: u16 info type then the item. */
export function encodeRepInfo(item: Exclude<InfoItem, { type: 'unknown' }>): Buffer {
  switch (item.type) {
    case INFO_EXPORT: {
      const out = Buffer.allocUnsafe(12);
      out.writeUInt16BE(INFO_EXPORT, 0);
      writeU64(out, 2, item.size);
      out.writeUInt16BE(item.transmissionFlags & 0xffff, 10);
      return out;
    }
    case INFO_NAME:
    case INFO_DESCRIPTION: {
      const text = item.type === INFO_NAME ? item.name : item.description;
      const out = Buffer.allocUnsafe(2 + utf8Length(text));
      out.writeUInt16BE(item.type, 0);
      out.write(text, 2, 'utf8');
      return out;
    }
    case INFO_BLOCK_SIZE: {
      const out = Buffer.allocUnsafe(14);
      out.writeUInt16BE(INFO_BLOCK_SIZE, 0);
      out.writeUInt32BE(item.minimum, 2);
      out.writeUInt32BE(item.preferred, 6);
      out.writeUInt32BE(item.maximum, 10);
      return out;
    }
  }
}

export function decodeRepInfo(payload: Uint8Array): InfoItem {
  needBytes(payload, 0, 2, 'NBD_REP_INFO');
  const b = payload as Buffer;
  const infoType = b.readUInt16BE(0);
  switch (infoType) {
    case INFO_EXPORT:
      if (payload.length !== 12) throw protocolError(`NBD_INFO_EXPORT: length ${payload.length}, expected 12`);
      return { type: INFO_EXPORT, size: readU64(payload, 2), exactSize: b.readBigUInt64BE(2), transmissionFlags: b.readUInt16BE(10) };
    case INFO_NAME:
      return { type: INFO_NAME, name: b.toString('utf8', 2, payload.length) };
    case INFO_DESCRIPTION:
      return { type: INFO_DESCRIPTION, description: b.toString('utf8', 2, payload.length) };
    case INFO_BLOCK_SIZE:
      if (payload.length !== 14) throw protocolError(`NBD_INFO_BLOCK_SIZE: length ${payload.length}, expected 14`);
      return { type: INFO_BLOCK_SIZE, minimum: b.readUInt32BE(2), preferred: b.readUInt32BE(6), maximum: b.readUInt32BE(10) };
    default:
      // The spec lets servers send items the client did not ask for; ignore unknown ones.
      return { type: 'unknown', infoType };
  }
}

export interface MetaContextReply {
  id: number;
  name: string;
}

/** NBD_REP_META_CONTEXT: u32 context id, then the name fills the rest. */
export function encodeRepMetaContext(id: number, name: string): Buffer {
  const out = Buffer.allocUnsafe(4 + utf8Length(name));
  out.writeUInt32BE(id >>> 0, 0);
  out.write(name, 4, 'utf8');
  return out;
}

export function decodeRepMetaContext(payload: Uint8Array): MetaContextReply {
  needBytes(payload, 0, 4, 'NBD_REP_META_CONTEXT');
  const b = payload as Buffer;
  return { id: b.readUInt32BE(0), name: b.toString('utf8', 4, payload.length) };
}

/** Error replies may carry a human-readable UTF-8 text as their whole payload. */
export function encodeErrorText(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

export function decodeErrorText(payload: Uint8Array): string {
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
}

// ---- names, for messages and debug logs ----

const OPTION_NAMES: Record<number, string> = {
  [OPT_EXPORT_NAME]: 'NBD_OPT_EXPORT_NAME', [OPT_ABORT]: 'NBD_OPT_ABORT', [OPT_LIST]: 'NBD_OPT_LIST',
  [OPT_PEEK_EXPORT]: 'NBD_OPT_PEEK_EXPORT', [OPT_STARTTLS]: 'NBD_OPT_STARTTLS', [OPT_INFO]: 'NBD_OPT_INFO',
  [OPT_GO]: 'NBD_OPT_GO', [OPT_STRUCTURED_REPLY]: 'NBD_OPT_STRUCTURED_REPLY',
  [OPT_LIST_META_CONTEXT]: 'NBD_OPT_LIST_META_CONTEXT', [OPT_SET_META_CONTEXT]: 'NBD_OPT_SET_META_CONTEXT',
  [OPT_EXTENDED_HEADERS]: 'NBD_OPT_EXTENDED_HEADERS',
};

const REPLY_NAMES: Record<number, string> = {
  [REP_ACK]: 'NBD_REP_ACK', [REP_SERVER]: 'NBD_REP_SERVER', [REP_INFO]: 'NBD_REP_INFO',
  [REP_META_CONTEXT]: 'NBD_REP_META_CONTEXT', [REP_ERR_UNSUP]: 'NBD_REP_ERR_UNSUP',
  [REP_ERR_POLICY]: 'NBD_REP_ERR_POLICY', [REP_ERR_INVALID]: 'NBD_REP_ERR_INVALID',
  [REP_ERR_PLATFORM]: 'NBD_REP_ERR_PLATFORM', [REP_ERR_TLS_REQD]: 'NBD_REP_ERR_TLS_REQD',
  [REP_ERR_UNKNOWN]: 'NBD_REP_ERR_UNKNOWN', [REP_ERR_SHUTDOWN]: 'NBD_REP_ERR_SHUTDOWN',
  [REP_ERR_BLOCK_SIZE_REQD]: 'NBD_REP_ERR_BLOCK_SIZE_REQD', [REP_ERR_TOO_BIG]: 'NBD_REP_ERR_TOO_BIG',
  [REP_ERR_EXT_HEADER_REQD]: 'NBD_REP_ERR_EXT_HEADER_REQD',
};

export function optionName(option: number): string {
  return OPTION_NAMES[option] ?? `option ${option}`;
}

export function optionReplyName(type: number): string {
  return REPLY_NAMES[type] ?? `reply ${hex(type)}`;
}
