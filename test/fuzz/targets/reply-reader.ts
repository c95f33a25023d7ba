// The client's transmission reply parser (simple, structured and extended replies, every chunk
// type) fed a model server's replies to a few pending commands, intact, damaged or random, in
// arbitrary socket-sized pieces. Intact replies must give exactly the model's data, holes,
// extents and errors (and a structured read's callback exactly the model's chunks); anything
// else must end in NbdError, every chunk reported still inside its read's buffer.
import fc from 'fast-check';
import { ReplyReader, type ReplyMode } from '../../../src/client/reply-reader.js';
import { Command } from '../../../src/client/command.js';
import type { ReadChunk } from '../../../src/client/read-chunks.js';
import { StatsCounter } from '../../../src/client/stats.js';
import {
  REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET,
  REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE, NBD_EIO, NBD_EINVAL, NBD_ENOSPC,
} from '../../../src/protocol/constants.js';
import { encodeBlockStatus, encodeErrorChunk, encodeOffsetHole } from '../../../src/protocol/chunks.js';
import { writeU64 } from '../../../src/protocol/bytes.js';
import { encodeExtendedReplyHeader, encodeSimpleReply, encodeStructuredReplyHeader } from '../../../src/protocol/replies.js';
import { chunkSizes, expectTyped, Finding, split, traffic, type FuzzTarget, type Traffic } from '../harness.js';

type Style = 'simple' | 'structured' | 'extended';
type Kind = 'read' | 'block-status' | 'flush' | 'write';

/** One piece of a structured READ reply: data or a hole over [at, at+n) of the request. */
type Piece = { hole: boolean; n: number };

interface CmdModel {
  kind: Kind;
  offset: number;
  length: number;
  /** READ: the pieces, in the order sent (covering the request). */
  pieces: Piece[];
  /** Bytes of a READ's data pieces (holes read as zero). */
  fill: number;
  /** BLOCK_STATUS: the extents sent. */
  extents: Array<{ length: number; flags: number }>;
  /** Wire error sent for this command (0 = success); structured: as an error chunk before DONE. */
  error: number;
  withOffset: boolean;
  message: string;
  /** READ: sent as preadStructured, its chunks recorded. */
  withCallback: boolean;
}

interface Model {
  style: Style;
  cmds: CmdModel[];
  /** Order in which commands are answered (a permutation of their indexes). */
  order: number[];
}

const CONTEXT_ID = 7;

function pieces(length: number): fc.Arbitrary<Piece[]> {
  return fc.array(fc.record({ hole: fc.boolean(), n: fc.integer({ min: 1, max: 24 }) }), { minLength: 1, maxLength: 4 })
    .map((ps) => {
      const out: Piece[] = [];
      let left = length;
      for (const p of ps) {
        if (left === 0) break;
        const n = Math.min(p.n, left);
        out.push({ hole: p.hole, n });
        left -= n;
      }
      if (left > 0) out.push({ hole: false, n: left });
      return out;
    });
}

function cmdModel(style: Style): fc.Arbitrary<CmdModel> {
  const kinds: Kind[] = style === 'simple' ? ['read', 'flush', 'write'] : ['read', 'block-status', 'flush', 'write'];
  return fc.record({
    kind: fc.constantFrom(...kinds),
    offset: fc.integer({ min: 0, max: 1 << 20 }),
    length: fc.integer({ min: 1, max: 48 }),
    error: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(NBD_EIO, NBD_EINVAL, NBD_ENOSPC, 99) }),
    withOffset: fc.boolean(),
    withCallback: fc.boolean(),
    message: fc.string({ maxLength: 12 }),
    fill: fc.integer({ min: 1, max: 255 }),
    extents: fc.array(fc.record({ length: fc.integer({ min: 1, max: 1 << 16 }), flags: fc.nat(3) }), { minLength: 1, maxLength: 4 }),
  }).chain((c) => (c.kind === 'read' ? pieces(c.length) : fc.constant([] as Piece[])).map((ps) => ({ ...c, pieces: ps })));
}

const model: fc.Arbitrary<Model> = fc.constantFrom<Style>('simple', 'structured', 'extended').chain((style) =>
  fc.array(cmdModel(style), { minLength: 1, maxLength: 4 }).chain((cmds) =>
    fc.shuffledSubarray([...cmds.keys()], { minLength: cmds.length, maxLength: cmds.length })
      .map((order) => ({ style, cmds, order }))));

function chunk(style: Style, flags: number, type: number, cookie: number, payload: Buffer): Buffer {
  if (style === 'extended') {
    const h = Buffer.alloc(32);
    encodeExtendedReplyHeader(h, 0, flags, type, cookie, 0, payload.length);
    return Buffer.concat([h, payload]);
  }
  const h = Buffer.alloc(20);
  encodeStructuredReplyHeader(h, 0, flags, type, cookie, payload.length);
  return Buffer.concat([h, payload]);
}

function readData(c: CmdModel): Buffer {
  const b = Buffer.alloc(c.length);
  let at = 0;
  for (const p of c.pieces) {
    if (!p.hole) b.fill(c.fill, at, at + p.n);
    at += p.n;
  }
  return b;
}

function replyBytes(style: Style, c: CmdModel, cookie: number): Buffer {
  if (style === 'simple') {
    const h = Buffer.alloc(16);
    encodeSimpleReply(h, 0, c.error, cookie);
    return c.kind === 'read' && c.error === 0 ? Buffer.concat([h, readData(c)]) : h;
  }
  const ext = style === 'extended';
  const out: Buffer[] = [];
  if (c.kind === 'read') {
    let at = 0;
    for (const p of c.pieces) {
      if (p.hole) {
        const b = Buffer.alloc(16);
        const n = encodeOffsetHole(b, 0, c.offset + at, p.n, ext);
        out.push(chunk(style, 0, REPLY_TYPE_OFFSET_HOLE, cookie, b.subarray(0, n)));
      } else {
        const b = Buffer.alloc(8 + p.n, c.fill);
        writeU64(b, 0, c.offset + at);
        out.push(chunk(style, 0, REPLY_TYPE_OFFSET_DATA, cookie, b));
      }
      at += p.n;
    }
  } else if (c.kind === 'block-status') {
    const b = Buffer.alloc(8 + 16 * c.extents.length);
    const n = encodeBlockStatus(b, 0, CONTEXT_ID, c.extents, ext);
    out.push(chunk(style, 0, ext ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS, cookie, b.subarray(0, n)));
  }
  if (c.error !== 0) {
    const b = Buffer.alloc(6 + Buffer.byteLength(c.message) + 8);
    const n = encodeErrorChunk(b, 0, c.error, c.message, c.withOffset ? c.offset : undefined);
    out.push(chunk(style, 0, c.withOffset ? REPLY_TYPE_ERROR_OFFSET : REPLY_TYPE_ERROR, cookie, b.subarray(0, n)));
  }
  out.push(chunk(style, REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, Buffer.alloc(0)));
  return Buffer.concat(out);
}

const valid = model.map((m) => ({
  model: m,
  bytes: Buffer.concat(m.order.map((i) => replyBytes(m.style, m.cmds[i]!, i + 1))),
}));

/** What a structured read's callback was told, in order: `status@offset+length`, and the chunk's bytes. */
type Heard = Array<{ said: string; chunk: ReadChunk; bytes: Buffer }>;

function command(c: CmdModel, heard: Heard): Command {
  switch (c.kind) {
    case 'read': {
      const buf = new Uint8Array(c.length).fill(0xee);
      if (!c.withCallback) return Command.read(buf, c.offset);
      return Command.readStructured(buf, c.offset, (k) => {
        heard.push({ said: `${k.status}@${k.offset}+${k.length}${k.error ? ` ${k.error}` : ''}`, chunk: k, bytes: Buffer.from(k.data) });
      });
    }
    case 'block-status': return Command.blockStatus(c.length, c.offset);
    case 'flush': return Command.flush();
    case 'write': return Command.write(new Uint8Array(c.length), c.offset);
  }
}

/** The chunks a structured read's callback must hear for this model reply, in order. */
function expectedChunks(style: Style, c: CmdModel, code: string): string[] {
  if (style === 'simple') return c.error === 0 ? [`data@${c.offset}+${c.length}`] : [];
  const out: string[] = [];
  let at = c.offset;
  for (const p of c.pieces) {
    out.push(`${p.hole ? 'hole' : 'data'}@${at}+${p.n}`);
    at += p.n;
  }
  if (c.error !== 0 && c.withOffset) out.push(`error@${c.offset}+0 ${code}`);
  return out;
}

function checkIntact(m: Model, cmds: Command[], finished: Set<number>, heard: Heard[]): void {
  m.cmds.forEach((c, i) => {
    const cmd = cmds[i]!;
    if (!finished.has(i + 1)) throw new Finding(`command ${i + 1} never finished on intact replies`);
    if (c.kind === 'read' && c.withCallback) {
      const want = expectedChunks(m.style, c, cmd.error?.code ?? '');
      const got = heard[i]!.map((h) => h.said);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Finding(`command ${i + 1}: callback heard ${got.join(', ')}, not ${want.join(', ')}`);
      const sent = readData(c);
      for (const h of heard[i]!) {
        const at = h.chunk.offset - c.offset;
        if (!h.bytes.equals(sent.subarray(at, at + h.chunk.length))) throw new Finding(`command ${i + 1}: ${h.said} carried other bytes`);
      }
    }
    if (c.error !== 0) {
      if (cmd.error === null) throw new Finding(`command ${i + 1}: the server's error was lost`);
      return;
    }
    if (cmd.error !== null) throw new Finding(`command ${i + 1}: error ${cmd.error.message} on a successful reply`);
    if (c.kind === 'read') {
      if (!Buffer.from(cmd.data!).equals(readData(c))) throw new Finding(`command ${i + 1}: read data differs from what was sent`);
      if (cmd.seen !== c.length) throw new Finding(`command ${i + 1}: ${cmd.seen} of ${c.length} bytes seen`);
    }
    if (c.kind === 'block-status') {
      const got = cmd.extents?.get('base:allocation');
      if (JSON.stringify(got) !== JSON.stringify(c.extents)) throw new Finding(`command ${i + 1}: extents differ`);
    }
  });
}

export const replyReaderTarget: FuzzTarget<{ t: Traffic<Model>; sizes: number[] }> = {
  name: 'client reply parser',
  input: fc.record({ t: traffic(valid), sizes: chunkSizes }),
  // The largest payload the reader gathers itself: a BLOCK_STATUS chunk of 2^20 extents.
  maxAlloc: 8 + 16 * (1 << 20) + 16,
  check({ t, sizes }) {
    const m = t.model;
    const heard: Heard[] = m.cmds.map(() => []);
    const cmds = m.cmds.map((c, i) => command(c, heard[i]!));
    const pending = new Map(cmds.map((c, i) => [i + 1, c]));
    const finished = new Set<number>();
    const mode: ReplyMode = {
      structured: m.style !== 'simple', extended: m.style === 'extended', contexts: new Map([[CONTEXT_ID, 'base:allocation']]),
    };
    const reader = new ReplyReader({
      find: (cookie) => pending.get(cookie),
      finish: (cmd) => {
        const cookie = cmds.indexOf(cmd) + 1;
        if (finished.has(cookie)) throw new Finding(`command ${cookie} finished twice`);
        finished.add(cookie);
        pending.delete(cookie);
      },
    }, mode, new StatsCounter());
    try {
      for (const piece of split(t.bytes, sizes)) {
        // Node hands every read its own buffer; give the reader a fresh copy as well.
        reader.feed(Buffer.from(piece));
        reader.directTarget();
      }
    } catch (err) {
      if (err instanceof Finding) throw err;
      expectTyped(err);
      if (t.intact) throw new Finding(`intact replies rejected: ${(err as Error).message}`);
      checkViews(cmds, heard);
      return;
    }
    for (const cmd of cmds) {
      if (cmd.type === 0 /* READ */ && cmd.seen > cmd.length) throw new Finding(`read saw ${cmd.seen} bytes of ${cmd.length}`);
    }
    checkViews(cmds, heard);
    if (t.intact) checkIntact(m, cmds, finished, heard);
  },
};

/** Whatever the traffic, a data or hole chunk is a view of its read's buffer at the chunk's place. */
function checkViews(cmds: Command[], heard: Heard[]): void {
  heard.forEach((list, i) => {
    const cmd = cmds[i]!;
    for (const { chunk: k, said } of list) {
      if (k.status === 'error') continue;
      const buf = cmd.data!;
      const at = k.data.byteOffset - buf.byteOffset;
      if (k.data.buffer !== buf.buffer || at !== k.offset - cmd.offset || at < 0 || at + k.length > buf.length) {
        throw new Finding(`command ${i + 1}: ${said} is not the buffer's [${k.offset - cmd.offset}, +${k.length})`);
      }
    }
  });
}
