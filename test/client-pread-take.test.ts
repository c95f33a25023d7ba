// preadTake: reads whose buffer is asked of the caller only when the reply's data arrives.
import { describe, expect, it } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinary } from './helpers/binaries.js';
import { teardownAfterEach } from './helpers/teardown.js';

const have = requireBinary('nbdkit');
const { servers, open } = teardownAfterEach<RunningServer>();

async function serve(args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args, {});
  servers.push(s);
  return s;
}

/** nbdkit pattern plugin: each 8-byte word holds its own offset, big-endian. */
function pattern(offset: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 8) b.writeBigUInt64BE(BigInt(offset + i), i);
  return b;
}

describe.skipIf(!have)('preadTake', () => {
  for (const [label, extra] of [['structured replies', []], ['simple replies (--no-sr)', ['--no-sr']]] as const) {
    it(`${label}: many reads in flight share a few pooled buffers, bytes land right`, async () => {
      const s = await serve([...extra, 'pattern', '16M']);
      const c = await open(s.uri);
      const size = 256 * 1024;
      const pool: Buffer[] = [];
      let created = 0;
      let takes = 0;
      const reads = Array.from({ length: 32 }, async (_, i) => {
        const buf = await c.preadTake(size, i * size, () => {
          takes++;
          const b = pool.pop() ?? (created++, Buffer.alloc(size));
          b.fill(0xee);
          return b;
        });
        expect(buf.equals(pattern(i * size, size))).toBe(true);
        pool.push(buf);
      });
      await Promise.all(reads);
      expect(takes).toBe(32);
      // Buffers come back to the pool as reads complete, so far fewer than 32 exist.
      expect(created).toBeLessThan(32);
    });
  }

  it('a read the server fails never takes a buffer', async () => {
    const s = await serve(['--filter=error', 'memory', '1M', 'error=EIO', 'error-pread-rate=1']);
    const c = await open(s.uri);
    let takes = 0;
    await expect(c.preadTake(4096, 0, () => { takes++; return Buffer.alloc(4096); })).rejects.toMatchObject({ code: 'EIO' });
    expect(takes).toBe(0);
  });

  it('a buffer shorter than the read fails the connection loudly, not silently', async () => {
    const s = await serve(['pattern', '1M']);
    const c = await open(s.uri);
    await expect(c.preadTake(4096, 0, () => Buffer.alloc(100))).rejects.toMatchObject({ name: 'NbdError' });
  });
});
