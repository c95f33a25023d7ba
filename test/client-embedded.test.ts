// The client against our own embedded server: the only server here that speaks extended
// headers (64-bit requests, extended replies, BLOCK_STATUS_EXT).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { teardownAfterEach } from './helpers/teardown.js';

const { servers, clients } = teardownAfterEach<RunningServer>();

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const GiB = 2 ** 30;

describe('embedded server', () => {
  for (const extendedHeaders of [true, false]) {
    it(`extended headers ${extendedHeaders ? 'on' : 'off'}: data, zero, trim, block status over 8 GiB`, async () => {
      const s = await startServer({ backend: ['memory', '8G'], extendedHeaders });
      servers.push(s);
      const c = await connect(s.uri);
      clients.push(c);
      expect(c.connection.extendedHeaders).toBe(extendedHeaders);
      expect(c.connection.structuredReplies).toBe(true);
      expect(c.export.size).toBe(8 * GiB);
      const w = Buffer.alloc(1 << 20);
      for (let i = 0; i < w.length; i++) w[i] = (i * 5 + 1) & 0xff;
      await c.pwrite(w, 5 * GiB);
      const r = Buffer.alloc(w.length);
      await Promise.all(Array.from({ length: 16 }, (_, i) =>
        c.pread(r.subarray(i * 65536, (i + 1) * 65536), 5 * GiB + i * 65536)));
      expect(sha(r)).toBe(sha(w));
      await c.zero(65536, 5 * GiB, { noHole: false });
      await c.trim(65536, 5 * GiB + 65536);
      await c.flush();
      await c.pread(r, 5 * GiB);
      expect(r.subarray(0, 131072).every((x) => x === 0)).toBe(true);
      expect(r.subarray(131072).equals(w.subarray(131072))).toBe(true);
      const bs = (await c.blockStatus(8 * GiB, 0)).get('base:allocation')!;
      expect(bs.length).toBeGreaterThan(0);
      // the export starts with 5 GiB never written: with 64-bit extents one extent may say so
      if (extendedHeaders) expect(bs[0]!.length).toBeGreaterThanOrEqual(4 * GiB);
      expect(bs[0]!.flags & 1).toBe(1);
    });
  }
});
