// Found by the reply-parser fuzz target: READ chunks that overlap used to add up to the
// request's length, so a read with a gap the server never sent data for counted as complete
// (the caller got stale buffer bytes and no error). Overlaps are now a protocol error.
import { describe, expect, it } from 'vitest';
import { Command } from '../src/client/command.js';
import { ReplyReader } from '../src/client/reply-reader.js';
import { StatsCounter } from '../src/client/stats.js';
import { REPLY_FLAG_DONE, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE } from '../src/protocol/constants.js';
import { encodeOffsetHole } from '../src/protocol/chunks.js';
import { writeU64 } from '../src/protocol/bytes.js';
import { encodeStructuredReplyHeader } from '../src/protocol/replies.js';

function chunk(type: number, flags: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  encodeStructuredReplyHeader(h, 0, flags, type, 1, payload.length);
  return Buffer.concat([h, payload]);
}

function data(offset: number, n: number, fill: number): Buffer {
  const b = Buffer.alloc(8 + n, fill);
  writeU64(b, 0, offset);
  return chunk(REPLY_TYPE_OFFSET_DATA, 0, b);
}

function hole(offset: number, n: number): Buffer {
  const b = Buffer.alloc(12);
  encodeOffsetHole(b, 0, offset, n, false);
  return chunk(REPLY_TYPE_OFFSET_HOLE, 0, b);
}

const done = chunk(REPLY_TYPE_NONE, REPLY_FLAG_DONE, Buffer.alloc(0));

function readWith(...chunks: Buffer[]): { cmd: Command; finished: boolean } {
  const cmd = Command.read(new Uint8Array(20).fill(0xee), 1000);
  cmd.cookie = 1;
  let finished = false;
  const reader = new ReplyReader(
    { find: (c) => (c === 1 && !finished ? cmd : undefined), finish: () => { finished = true; } },
    { structured: true, extended: false, contexts: new Map() },
    new StatsCounter(),
  );
  reader.feed(Buffer.concat(chunks));
  return { cmd, finished };
}

describe('READ reply chunks', () => {
  it('in order, out of order and with holes: complete and exact', () => {
    const a = readWith(data(1000, 8, 1), data(1008, 12, 2), done);
    expect(a.finished && a.cmd.seen).toBe(20);
    const b = readWith(data(1012, 8, 3), hole(1000, 4), data(1004, 8, 4), done);
    expect(b.finished && b.cmd.seen).toBe(20);
    expect(Buffer.from(b.cmd.data!)).toEqual(Buffer.concat([Buffer.alloc(4), Buffer.alloc(8, 4), Buffer.alloc(8, 3)]));
  });

  it('overlapping data chunks are a protocol error, not a complete read with a gap', () => {
    // [0,12) twice adds up to 24 >= 20, and [12,20) was never sent.
    expect(() => readWith(data(1000, 12, 1), data(1000, 12, 1), done)).toThrow(/overlap/);
    expect(() => readWith(data(1008, 8, 1), data(1000, 12, 1), done)).toThrow(expect.objectContaining({ code: 'EPROTO' }));
    expect(() => readWith(hole(1004, 4), data(1000, 8, 1), data(1008, 12, 1), done)).toThrow(/overlap/);
  });
});
