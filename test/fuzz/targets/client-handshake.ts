// The client's handshake and option replies (src/client/option-phase.ts, negotiate.ts and the
// decoders of src/protocol/options.ts and handshake.ts) against a model server's side of the
// conversation — oldstyle, or fixed newstyle answering extended headers, structured replies,
// SET_META_CONTEXT and GO (sometimes with a refusal and fallback) — intact, damaged or random,
// through an in-memory stream that then closes. Intact: the export the model describes; else
// the handshake must fail with NbdError, never hang.
import type { Duplex } from 'node:stream';
import fc from 'fast-check';
import { OptionPhase } from '../../../src/client/option-phase.js';
import { StatsCounter } from '../../../src/client/stats.js';
import type { ConnectionInfo } from '../../../src/client/types.js';
import {
  FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_BLOCK_SIZE, INFO_EXPORT, INFO_NAME, OPT_EXTENDED_HEADERS, OPT_GO,
  OPT_SET_META_CONTEXT, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_UNSUP, REP_INFO, REP_META_CONTEXT, REP_SERVER, OPT_LIST,
  OPT_INFO,
} from '../../../src/protocol/constants.js';
import { encodeNewstyleGreeting, encodeOldstyleHandshake } from '../../../src/protocol/handshake.js';
import { buildOptionReply, encodeErrorText, encodeRepInfo, encodeRepMetaContext, encodeRepServer } from '../../../src/protocol/options.js';
import { chunkSizes, duplexPair, expectTyped, Finding, split, traffic, type FuzzTarget, type Traffic } from '../harness.js';

interface Model {
  oldstyle: boolean;
  size: number;
  tflags: number;
  extended: boolean;
  structured: boolean;
  /** Option mode: LIST and INFO are asked before GO. */
  optMode: boolean;
  names: string[];
  minimum: number;
}

const model: fc.Arbitrary<Model> = fc.record({
  oldstyle: fc.boolean(),
  size: fc.oneof(fc.nat(), fc.constantFrom(0, 2 ** 32, 2 ** 53 - 1)),
  tflags: fc.nat(0xffff).map((f) => f | 1),
  extended: fc.boolean(),
  structured: fc.boolean(),
  optMode: fc.boolean(),
  names: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
  minimum: fc.constantFrom(1, 512, 4096),
});

function serverBytes(m: Model): Buffer {
  if (m.oldstyle) {
    const b = Buffer.alloc(152);
    encodeOldstyleHandshake(b, 0, { size: m.size, flags: m.tflags });
    return b;
  }
  const out: Buffer[] = [];
  const g = Buffer.alloc(18);
  encodeNewstyleGreeting(g, 0, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
  out.push(g);
  out.push(buildOptionReply(OPT_EXTENDED_HEADERS, m.extended ? REP_ACK : REP_ERR_UNSUP, m.extended ? undefined : encodeErrorText('no')));
  if (!m.extended) out.push(buildOptionReply(OPT_STRUCTURED_REPLY, m.structured ? REP_ACK : REP_ERR_UNSUP));
  const structured = m.extended || m.structured;
  if (m.optMode) {
    for (const n of m.names) out.push(buildOptionReply(OPT_LIST, REP_SERVER, encodeRepServer(n, 'd')));
    out.push(buildOptionReply(OPT_LIST, REP_ACK));
    out.push(buildOptionReply(OPT_INFO, REP_INFO, encodeRepInfo({ type: INFO_EXPORT, size: m.size, transmissionFlags: m.tflags })));
    out.push(buildOptionReply(OPT_INFO, REP_ACK));
  }
  if (structured) {
    out.push(buildOptionReply(OPT_SET_META_CONTEXT, REP_META_CONTEXT, encodeRepMetaContext(1, 'base:allocation')));
    out.push(buildOptionReply(OPT_SET_META_CONTEXT, REP_ACK));
  }
  out.push(buildOptionReply(OPT_GO, REP_INFO, encodeRepInfo({ type: INFO_EXPORT, size: m.size, transmissionFlags: m.tflags })));
  out.push(buildOptionReply(OPT_GO, REP_INFO, encodeRepInfo({ type: INFO_NAME, name: m.names[0] ?? '' })));
  out.push(buildOptionReply(OPT_GO, REP_INFO, encodeRepInfo({ type: INFO_BLOCK_SIZE, minimum: m.minimum, preferred: 4096, maximum: 32 << 20 })));
  out.push(buildOptionReply(OPT_GO, REP_ACK));
  return Buffer.concat(out);
}

const valid = model.map((m) => ({ model: m, bytes: serverBytes(m) }));

/** `intact`: the bytes are the model's own, so what the client lists can be checked against it. */
async function handshake(client: Duplex, m: Model, intact: boolean): Promise<number> {
  const conn: ConnectionInfo = { protocol: 'newstyle-fixed', tls: false, structuredReplies: false, extendedHeaders: false, metaContexts: [] };
  const phase = new OptionPhase(client, { handshakeTimeoutMs: 0, optMode: m.optMode }, conn, new StatsCounter());
  const opened = await phase.open();
  if (opened) return opened.size;
  const listed = await phase.list();
  // Damaged traffic may well repeat a REP_SERVER reply: only the model's own bytes say how many.
  if (intact && !m.oldstyle && listed.length !== m.names.length) throw new Finding(`listed ${listed.length} exports of ${m.names.length}`);
  await phase.info('');
  return (await phase.go('')).size;
}

export const clientHandshakeTarget: FuzzTarget<{ t: Traffic<Model>; sizes: number[] }> = {
  name: 'client handshake and option replies',
  input: fc.record({ t: traffic(valid), sizes: chunkSizes }),
  // Option replies are capped at 16 MiB (MAX_OPTION_REPLY) and only read once they arrived.
  maxAlloc: 64 * 1024,
  timeoutMs: 5000,
  async check({ t, sizes }) {
    const [client, server] = duplexPair();
    server.on('data', () => {});
    server.on('error', () => {});
    client.on('error', () => {});
    for (const piece of split(t.bytes, sizes)) server.write(piece);
    server.end();
    try {
      const size = await handshake(client, t.model, t.intact);
      if (t.intact && size !== t.model.size) throw new Finding(`export size ${size}, the server said ${t.model.size}`);
    } catch (err) {
      if (err instanceof Finding) throw err;
      expectTyped(err);
      if (t.intact) throw new Finding(`intact handshake failed: ${(err as Error).message}`);
    } finally {
      client.destroy();
      server.destroy();
    }
  },
};
