// Cookies are opaque 64-bit values: our server must echo exactly the 8 bytes a client picked,
// including values a JS number cannot hold (the Linux kernel puts a counter in the high half),
// on every kind of reply (data, hole, success, error, block status) in all three reply styles.
import { describe, expect, it } from 'vitest';
import {
  CMD_BLOCK_STATUS, CMD_READ, CMD_WRITE, EXTENDED_REPLY_MAGIC, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS,
  REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
  SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, encodeCompactRequest, encodeExtendedRequest, requestSize,
} from '../src/protocol/index.js';
import { MemoryBackend } from '../src/server/index.js';
import { RawNbd, embeddedStarter } from './helpers/embedded.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

/** Cookies above 2^53, with the top bit set, and all ones: none survives a trip through a number. */
const COOKIES = {
  write: Buffer.from('fedcba9876543210', 'hex'),
  read: Buffer.from('ffffffffffffffff', 'hex'),
  hole: Buffer.from('8000000000000001', 'hex'),
  bad: Buffer.from('00200000000000ff', 'hex'),
  status: Buffer.from('deadbeefcafef00d', 'hex'),
};

function send(r: RawNbd, type: number, cookie: Buffer, offset: number, length: number, payload?: Buffer): void {
  const h = Buffer.alloc(requestSize(r.extended));
  const halves = { cookieHi: cookie.readUInt32BE(0), cookieLo: cookie.readUInt32BE(4) };
  if (r.extended) encodeExtendedRequest(h, 0, 0, type, halves, offset, length);
  else encodeCompactRequest(h, 0, 0, type, halves, offset, length);
  r.write(payload ? Buffer.concat([h, payload]) : h);
}

interface Chunk { cookie: string; type: number; done: boolean }

/** Reads one reply or chunk; a simple reply to a successful read is followed by `readLength` bytes. */
async function readChunk(r: RawNbd, readLengthOf: (cookie: string) => number): Promise<Chunk> {
  const magic = (await r.read(4)).readUInt32BE(0);
  if (magic === SIMPLE_REPLY_MAGIC) {
    const rest = await r.read(12);
    const cookie = rest.subarray(4, 12).toString('hex');
    if (rest.readUInt32BE(0) === 0 && readLengthOf(cookie) > 0) await r.read(readLengthOf(cookie));
    return { cookie, type: rest.readUInt32BE(0) === 0 ? -1 : REPLY_TYPE_ERROR, done: true };
  }
  const extended = magic === EXTENDED_REPLY_MAGIC;
  expect(extended || magic === STRUCTURED_REPLY_MAGIC).toBe(true);
  const rest = await r.read(extended ? 28 : 16);
  const length = extended ? rest.readUInt32BE(20) * 2 ** 32 + rest.readUInt32BE(24) : rest.readUInt32BE(12);
  if (length > 0) await r.read(length);
  return { cookie: rest.subarray(4, 12).toString('hex'), type: rest.readUInt16BE(2), done: (rest.readUInt16BE(0) & REPLY_FLAG_DONE) !== 0 };
}

describe('our server echoes 64-bit cookies exactly', () => {
  for (const style of ['simple', 'structured', 'extended'] as const) {
    it(`${style} replies`, async () => {
      const s = await serve({ backend: new MemoryBackend(1 << 20) });
      const r = await RawNbd.connect(s.socket);
      cleanups.push(() => r.destroy());
      await r.negotiate({ structured: style === 'structured', extended: style === 'extended', meta: style !== 'simple' });

      send(r, CMD_WRITE, COOKIES.write, 0, 4096, Buffer.alloc(4096, 0xab));
      await new Promise((resolve) => setTimeout(resolve, 50));
      send(r, CMD_READ, COOKIES.read, 0, 4096);
      // Unwritten memory reads as a hole: an OFFSET_HOLE chunk with structured replies.
      send(r, CMD_READ, COOKIES.hole, 65536, 4096);
      send(r, CMD_READ, COOKIES.bad, 1 << 20, 4096);
      if (style !== 'simple') send(r, CMD_BLOCK_STATUS, COOKIES.status, 0, 1 << 20);

      const readLength: Record<string, number> = { [COOKIES.read.toString('hex')]: 4096, [COOKIES.hole.toString('hex')]: 4096 };
      const seen = new Map<string, number[]>();
      let open = style === 'simple' ? 4 : 5;
      while (open > 0) {
        const c = await readChunk(r, (cookie) => readLength[cookie] ?? 0);
        seen.set(c.cookie, [...(seen.get(c.cookie) ?? []), c.type]);
        if (c.done) open--;
      }
      const types = (name: keyof typeof COOKIES): number[] | undefined => seen.get(COOKIES[name].toString('hex'));
      expect([...seen.keys()].sort()).toEqual(Object.entries(COOKIES)
        .filter(([name]) => style !== 'simple' || name !== 'status').map(([, c]) => c.toString('hex')).sort());
      if (style === 'simple') {
        expect(types('write')).toEqual([-1]);
        expect(types('read')).toEqual([-1]);
        expect(types('hole')).toEqual([-1]);
      } else {
        expect(types('write')).toEqual([style === 'extended' ? REPLY_TYPE_NONE : -1]);
        expect(types('read')).toEqual([REPLY_TYPE_OFFSET_DATA]);
        expect(types('hole')).toEqual([REPLY_TYPE_OFFSET_HOLE]);
        expect(types('status')).toEqual([style === 'extended' ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS]);
      }
      expect(types('bad')).toEqual([REPLY_TYPE_ERROR]);
    });
  }
});
