// The server's handshake: option parsing and every option handler (src/server/negotiate.ts,
// option-handlers.ts) against a model client's side — client flags, then any mix of
// STRUCTURED_REPLY, EXTENDED_HEADERS, LIST, INFO, LIST/SET_META_CONTEXT, STARTTLS and unknown
// options, ended by GO, EXPORT_NAME or ABORT — intact, damaged or random, through an in-memory
// stream that then closes. Intact: transmission on the export asked for (or the end ABORT asks
// for); else the session ends with EndSession or NbdError, never another exception or a hang.
import fc from 'fast-check';
import { EndSession, negotiate } from '../../../src/server/negotiate.js';
import { resolveExports, sessionConfig } from '../../../src/server/listener.js';
import type { SessionConfig } from '../../../src/server/options.js';
import {
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, INFO_BLOCK_SIZE, INFO_NAME, OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS,
  OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY,
} from '../../../src/protocol/constants.js';
import {
  buildOption, encodeExportNamePayload, encodeInfoRequestPayload, encodeMetaContextPayload,
} from '../../../src/protocol/options.js';
import { chunkSizes, duplexPair, expectTyped, Finding, split, traffic, type FuzzTarget, type Traffic } from '../harness.js';

type Opt =
  | { o: 'plain'; option: number }
  | { o: 'info'; name: string; infos: number[] }
  | { o: 'meta'; set: boolean; name: string; queries: string[] }
  | { o: 'unknown'; option: number; payload: Uint8Array };

interface Model { opts: Opt[]; end: 'go' | 'export-name' | 'abort'; name: string }

const exportName = fc.constantFrom('', 'disk', 'missing');

const opt: fc.Arbitrary<Opt> = fc.oneof(
  fc.record({ o: fc.constant('plain' as const), option: fc.constantFrom(OPT_STRUCTURED_REPLY, OPT_EXTENDED_HEADERS, OPT_LIST, OPT_STARTTLS) }),
  fc.record({ o: fc.constant('info' as const), name: exportName, infos: fc.array(fc.constantFrom(INFO_NAME, INFO_BLOCK_SIZE, 0, 77), { maxLength: 3 }) }),
  fc.record({
    o: fc.constant('meta' as const), set: fc.boolean(), name: exportName,
    queries: fc.array(fc.constantFrom('base:allocation', 'base:', 'qemu:dirty-bitmap:x', 'x:y', ''), { maxLength: 3 }),
  }),
  fc.record({ o: fc.constant('unknown' as const), option: fc.integer({ min: 12, max: 0xffff }), payload: fc.uint8Array({ maxLength: 16 }) }),
);

const model: fc.Arbitrary<Model> = fc.record({
  opts: fc.array(opt, { maxLength: 5 }),
  end: fc.constantFrom('go' as const, 'export-name' as const, 'abort' as const),
  name: fc.constantFrom('', 'disk'),
});

function clientBytes(m: Model): Buffer {
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
  const out: Buffer[] = [flags];
  for (const o of m.opts) {
    if (o.o === 'plain') out.push(buildOption(o.option));
    else if (o.o === 'info') out.push(buildOption(OPT_INFO, encodeInfoRequestPayload(o.name, o.infos)));
    else if (o.o === 'meta') out.push(buildOption(o.set ? OPT_SET_META_CONTEXT : OPT_LIST_META_CONTEXT, encodeMetaContextPayload(o.name, o.queries)));
    else out.push(buildOption(o.option, o.payload));
  }
  if (m.end === 'go') out.push(buildOption(OPT_GO, encodeInfoRequestPayload(m.name, [INFO_BLOCK_SIZE])));
  else if (m.end === 'export-name') out.push(buildOption(OPT_EXPORT_NAME, encodeExportNamePayload(m.name)));
  else out.push(buildOption(OPT_ABORT));
  return Buffer.concat(out);
}

const valid = model.map((m) => ({ model: m, bytes: clientBytes(m) }));

let config: Promise<SessionConfig> | undefined;
function serverConfig(): Promise<SessionConfig> {
  const options = { exports: { '': ['memory', '1M'], disk: ['memory', '64k'] } };
  config ??= resolveExports(options, []).then((exports) => sessionConfig(options, exports));
  return config;
}

export const serverNegotiateTarget: FuzzTarget<{ t: Traffic<Model>; sizes: number[] }> = {
  name: 'server option negotiation',
  input: fc.record({ t: traffic(valid), sizes: chunkSizes }),
  // Option payloads are refused above 64 KiB (MAX_OPTION_LENGTH) before any buffer is made.
  maxAlloc: 64 * 1024,
  timeoutMs: 5000,
  async check({ t, sizes }) {
    const cfg = await serverConfig();
    const [client, server] = duplexPair();
    client.on('data', () => {});
    client.on('error', () => {});
    server.on('error', () => {});
    for (const piece of split(t.bytes, sizes)) client.write(piece);
    client.end();
    try {
      const n = await negotiate(server, cfg);
      if (t.intact && (t.model.end === 'abort' || n.export.name !== t.model.name)) {
        throw new Finding(`entered transmission on '${n.export.name}' for ${JSON.stringify(t.model.end)} of '${t.model.name}'`);
      }
    } catch (err) {
      if (err instanceof Finding) throw err;
      expectTyped(err, EndSession);
      if (t.intact && t.model.end !== 'abort') throw new Finding(`intact handshake ended: ${(err as Error).message}`);
    } finally {
      client.destroy();
      server.destroy();
    }
  },
};
