// The server's transmission request parser fed a model client's requests (compact or extended
// headers, WRITE payloads, PAYLOAD_LEN), intact, damaged or random, in arbitrary pieces. Intact
// traffic must come out as exactly the requests sent; anything else may only end in a reported
// violation. It never throws, and never sets aside more than the protocol lets a payload be.
import fc from 'fast-check';
import { RequestParser, type ParsedRequest } from '../../../src/server/request-parser.js';
import { BufferPool } from '../../../src/server/buffer-pool.js';
import { MAX_SKIPPABLE_PAYLOAD } from '../../../src/server/options.js';
import { CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_FUA, CMD_READ, CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_BLOCK_STATUS } from '../../../src/protocol/constants.js';
import { encodeRequest } from '../../../src/protocol/requests.js';
import { chunkSizes, Finding, split, traffic, type FuzzTarget, type Traffic } from '../harness.js';

interface Req { type: number; flags: number; cookie: number; offset: number; length: number; fill: number }
interface Model { extended: boolean; reqs: Req[]; keep: boolean }

const req: fc.Arbitrary<Req> = fc.record({
  type: fc.constantFrom(CMD_READ, CMD_WRITE, CMD_FLUSH, CMD_TRIM, CMD_BLOCK_STATUS),
  flags: fc.constantFrom(0, CMD_FLAG_FUA),
  cookie: fc.nat(),
  offset: fc.nat(1 << 30),
  length: fc.integer({ min: 0, max: 64 }),
  fill: fc.integer({ min: 0, max: 255 }),
});

const valid = fc.record({ extended: fc.boolean(), reqs: fc.array(req, { minLength: 1, maxLength: 5 }), keep: fc.boolean() })
  .map((m) => {
    const reqs = m.reqs.map((r) => (m.extended && r.type === CMD_WRITE ? { ...r, flags: r.flags | CMD_FLAG_PAYLOAD_LEN } : r));
    const parts: Buffer[] = [];
    for (const r of reqs) {
      const h = Buffer.alloc(32);
      const n = encodeRequest(h, 0, r, m.extended);
      parts.push(h.subarray(0, n));
      if (r.type === CMD_WRITE) parts.push(Buffer.alloc(r.length, r.fill));
    }
    return { model: { ...m, reqs }, bytes: Buffer.concat(parts) };
  });

const pool = new BufferPool();

export const requestParserTarget: FuzzTarget<{ t: Traffic<Model>; sizes: number[] }> = {
  name: 'server request parser',
  input: fc.record({ t: traffic(valid), sizes: chunkSizes }),
  maxAlloc: MAX_SKIPPABLE_PAYLOAD,
  check({ t, sizes }) {
    const got: ParsedRequest[] = [];
    let violation: string | undefined;
    const parser = new RequestParser(t.model.extended, {
      keepPayload: () => t.model.keep,
      request: (r) => {
        if (violation !== undefined) throw new Finding('request reported after a violation');
        if (r.payload !== undefined && r.payload.length !== r.length) {
          throw new Finding(`payload of ${r.payload.length} bytes for a length of ${r.length}`);
        }
        got.push({ ...r, payload: r.payload && Buffer.from(r.payload) });
        if (r.pooled) pool.release(r.pooled);
      },
      violation: (m) => {
        if (violation !== undefined) throw new Finding('two violations reported');
        violation = m;
      },
    }, pool);
    for (const piece of split(t.bytes, sizes)) parser.push(Buffer.from(piece));
    if (!t.intact) return;
    if (violation !== undefined) throw new Finding(`intact requests rejected: ${violation}`);
    const want = t.model.reqs;
    if (got.length !== want.length || parser.midRequest) throw new Finding(`${got.length} requests parsed of ${want.length}`);
    want.forEach((w, i) => {
      const g = got[i]!;
      if (g.type !== w.type || g.flags !== w.flags || g.offset !== w.offset || g.length !== w.length || g.cookieLo !== w.cookie % 2 ** 32) {
        throw new Finding(`request ${i} parsed as ${JSON.stringify(g)}, sent ${JSON.stringify(w)}`);
      }
      if (w.type === CMD_WRITE && w.length > 0) {
        if (t.model.keep ? !g.payload?.equals(Buffer.alloc(w.length, w.fill)) : !g.payloadDropped) {
          throw new Finding(`request ${i}: payload not delivered as sent`);
        }
      }
    });
  },
};
