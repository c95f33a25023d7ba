// preadStructured's chunk callback against scripted reply bytes fed to the ReplyReader:
// which chunks it sees (data, hole, error with an offset; a simple reply as one data chunk),
// the `error` it is given, and the read's final result when the callback or the server fails
// (libnbd's rules: the first failure decides, later chunks still reach the callback).
import { describe, expect, it } from 'vitest';
import { Command } from '../src/client/command.js';
import type { ReadChunk } from '../src/client/read-chunks.js';
import { ReplyReader } from '../src/client/reply-reader.js';
import { StatsCounter } from '../src/client/stats.js';
import {
  NBD_EIO, NBD_ENOSPC, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET, REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
} from '../src/protocol/constants.js';
import { encodeErrorChunk, encodeOffsetHole, errorChunkSize } from '../src/protocol/chunks.js';
import { writeU64 } from '../src/protocol/bytes.js';
import { NbdError } from '../src/protocol/errors.js';
import { encodeChunkHeader, encodeSimpleReply } from '../src/protocol/replies.js';

const AT = 4096;
const LEN = 24;

interface Script {
  extended?: boolean;
}

function chunk(s: Script, type: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(32);
  const n = encodeChunkHeader(h, 0, s.extended ?? false, flags, type, 1, AT, payload.length);
  return Buffer.concat([h.subarray(0, n), payload]);
}
const data = (s: Script, offset: number, n: number, fill: number, flags = 0): Buffer => {
  const b = Buffer.alloc(8 + n, fill);
  writeU64(b, 0, offset);
  return chunk(s, REPLY_TYPE_OFFSET_DATA, flags, b);
};
const hole = (s: Script, offset: number, n: number): Buffer => {
  const b = Buffer.alloc(16);
  return chunk(s, REPLY_TYPE_OFFSET_HOLE, 0, b.subarray(0, encodeOffsetHole(b, 0, offset, n, false)));
};
const errorAt = (s: Script, wire: number, offset: number | undefined, message = 'bad sector'): Buffer => {
  const b = Buffer.alloc(errorChunkSize(message, offset !== undefined));
  encodeErrorChunk(b, 0, wire, message, offset);
  return chunk(s, offset === undefined ? REPLY_TYPE_ERROR : REPLY_TYPE_ERROR_OFFSET, 0, b);
};
const done = (s: Script): Buffer => chunk(s, REPLY_TYPE_NONE, REPLY_FLAG_DONE, Buffer.alloc(0));

/** Runs one structured read of [AT, AT+LEN) through a reader fed `bytes`; the chunks seen and how it ended. */
async function read(
  mode: { structured: boolean; extended?: boolean }, bytes: Buffer[], onChunk: (c: ReadChunk) => void | Promise<void>,
): Promise<{ seen: ReadChunk[]; buf: Uint8Array; result: unknown }> {
  const buf = new Uint8Array(LEN).fill(0xee);
  const seen: ReadChunk[] = [];
  const cmd = Command.readStructured(buf, AT, (c) => {
    seen.push({ ...c, data: Uint8Array.from(c.data) });
    return onChunk(c);
  });
  cmd.cookie = 1;
  const settled = new Promise<unknown>((resolve) => {
    cmd.resolve = () => resolve('ok');
    cmd.reject = (e) => resolve(e);
  });
  const reader = new ReplyReader(
    { find: (c) => (c === 1 ? cmd : undefined), finish: (c) => c.settle() },
    { structured: mode.structured, extended: mode.extended ?? false, contexts: new Map() },
    new StatsCounter(),
  );
  reader.feed(Buffer.concat(bytes));
  return { seen, buf, result: await settled };
}

const summary = (seen: ReadChunk[]): string[] => seen.map((c) => `${c.status}@${c.offset}+${c.length}${c.error ? ` ${c.error}` : ''}`);

describe('preadStructured: the chunks the callback sees', () => {
  for (const extended of [false, true]) {
    it(`data, a hole and data out of order (${extended ? 'extended headers' : 'structured replies'}): each as it lands, views of the buffer`, async () => {
      const s = { extended };
      const r = await read({ structured: true, extended }, [data(s, AT + 16, 8, 3), hole(s, AT, 4), data(s, AT + 4, 12, 4), done(s)], () => undefined);
      expect(r.result).toBe('ok');
      expect(summary(r.seen)).toEqual([`data@${AT + 16}+8`, `hole@${AT}+4`, `data@${AT + 4}+12`]);
      expect(r.seen[0]!.data).toEqual(new Uint8Array(8).fill(3));
      expect(r.seen[1]!.data).toEqual(new Uint8Array(4));
      expect(Buffer.from(r.buf)).toEqual(Buffer.concat([Buffer.alloc(4), Buffer.alloc(12, 4), Buffer.alloc(8, 3)]));
    });
  }

  it('a simple reply is one data chunk covering the whole read, seen once the payload is in', async () => {
    const h = Buffer.alloc(16);
    encodeSimpleReply(h, 0, 0, 1);
    const r = await read({ structured: false }, [h, Buffer.alloc(LEN, 9)], () => undefined);
    expect(r.result).toBe('ok');
    expect(summary(r.seen)).toEqual([`data@${AT}+${LEN}`]);
    expect(r.seen[0]!.data).toEqual(new Uint8Array(LEN).fill(9));
  });

  it('a simple reply with an error reaches no callback, and the read fails with it', async () => {
    const h = Buffer.alloc(16);
    encodeSimpleReply(h, 0, NBD_EIO, 1);
    const r = await read({ structured: false }, [h], () => undefined);
    expect(r.seen).toEqual([]);
    expect(r.result).toMatchObject({ code: 'EIO' });
  });

  it('an error with an offset is an error chunk (the server\'s code as input); one without is not a chunk', async () => {
    const s = {};
    const r = await read({ structured: true }, [data(s, AT, 8, 1), errorAt(s, NBD_EIO, AT + 8), errorAt(s, NBD_ENOSPC, undefined),
      data(s, AT + 16, 8, 2), done(s)], () => undefined);
    expect(summary(r.seen)).toEqual([`data@${AT}+8`, `error@${AT + 8}+0 EIO`, `data@${AT + 16}+8 EIO`]);
    expect(r.result).toMatchObject({ code: 'EIO', serverMessage: 'bad sector' });
  });
});

describe('preadStructured: failing the read from the callback', () => {
  const s = {};
  const three = [data(s, AT, 8, 1), data(s, AT + 8, 8, 2), data(s, AT + 16, 8, 3), done(s)];

  it('a throw fails the read with EPROTO; later chunks still reach the callback, told of that error', async () => {
    const r = await read({ structured: true }, three, (c) => {
      if (c.offset === AT + 8) throw new Error('checksum mismatch');
    });
    expect(summary(r.seen)).toEqual([`data@${AT}+8`, `data@${AT + 8}+8`, `data@${AT + 16}+8 EPROTO`]);
    expect(r.result).toBeInstanceOf(NbdError);
    expect(r.result).toMatchObject({ code: 'EPROTO', message: 'pread: chunk callback failed: checksum mismatch' });
  });

  it('a thrown NbdError is the read\'s error (libnbd: the errno the callback stores)', async () => {
    const mine = new NbdError('EIO', 'my check');
    const r = await read({ structured: true }, three, (c) => {
      if (c.offset === AT) throw mine;
    });
    expect(r.result).toBe(mine);
  });

  it('only the first failure counts: a later throw leaves an earlier server error', async () => {
    const r = await read({ structured: true }, [errorAt(s, NBD_ENOSPC, AT), data(s, AT + 8, 8, 2), done(s)], (c) => {
      if (c.status === 'data') throw new NbdError('EIO', 'late');
    });
    expect(r.result).toMatchObject({ code: 'ENOSPC' });
  });

  it('on an error chunk a plain throw keeps the server\'s error, a thrown NbdError replaces it', async () => {
    const plain = await read({ structured: true }, [errorAt(s, NBD_EIO, AT), done(s)], () => {
      throw new Error('x');
    });
    expect(plain.result).toMatchObject({ code: 'EIO', serverMessage: 'bad sector' });
    const chosen = await read({ structured: true }, [errorAt(s, NBD_EIO, AT), done(s)], () => {
      throw new NbdError('ENOSPC', 'mine');
    });
    expect(chosen.result).toMatchObject({ code: 'ENOSPC', message: 'mine' });
  });

  it('a callback returning a promise: the read settles after it, and a rejection fails the read', async () => {
    const order: string[] = [];
    const ok = await read({ structured: true }, three, async (c) => {
      await new Promise((r) => setTimeout(r, 5));
      order.push(`written ${c.offset}`);
    });
    expect(ok.result).toBe('ok');
    expect(order).toHaveLength(3);
    const bad = await read({ structured: true }, three, async (c) => {
      await new Promise((r) => setTimeout(r, c.offset === AT ? 10 : 1));
      if (c.offset !== AT + 16) throw new Error(`write ${c.offset} failed`);
    });
    // The first failing chunk in arrival order decides, not the first to fail in time.
    expect(bad.result).toMatchObject({ code: 'EPROTO', message: `pread: chunk callback failed: write ${AT} failed` });
  });
});

describe('preadStructured: an error offset outside the read', () => {
  const s = {};
  for (const [name, offset] of [['before it', AT - 1], ['at its end', AT + LEN], ['far past it', AT + 1_000_000]] as const) {
    it(`an ERROR_OFFSET ${name} is a protocol error, and no callback hears of it`, async () => {
      const seen: string[] = [];
      await expect(read({ structured: true }, [errorAt(s, NBD_EIO, offset), done(s)], (c) => {
        seen.push(c.status);
      })).rejects.toMatchObject({ code: 'EPROTO', message: expect.stringContaining(`ERROR_OFFSET at ${offset} lies outside`) });
      expect(seen).toEqual([]);
    });
  }

  it('the last byte of the read is a valid error offset', async () => {
    const r = await read({ structured: true }, [errorAt(s, NBD_EIO, AT + LEN - 1), done(s)], () => undefined);
    expect(r.result).toMatchObject({ code: 'EIO' });
  });
});
