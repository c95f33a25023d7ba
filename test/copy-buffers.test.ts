// Buffer reuse on the write path: the send window's admission rules, the client's onSent
// callback (payload handed to the kernel before the reply), and reads that land straight in
// the caller's buffer, all checked on real bytes against nbdkit.
import { afterEach, describe, expect, it } from 'vitest';
import { SendWindow } from '../src/copy/send-window.js';
import { BufferPool } from '../src/copy/buffer-pool.js';
import { connect, type NbdClient } from '../src/client/index.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinary } from './helpers/binaries.js';

describe('SendWindow', () => {
  it('admits up to its limit, then in order as bytes are released', async () => {
    const w = new SendWindow(100);
    expect(w.acquire(60)).toBeUndefined();
    expect(w.acquire(40)).toBeUndefined();
    const order: string[] = [];
    const a = w.acquire(50)!.then(() => order.push('a'));
    const b = w.acquire(10)!.then(() => order.push('b'));
    expect(a).toBeInstanceOf(Promise);
    w.release(40);
    await Promise.resolve();
    // 60 + 50 > 100: a still waits, and b may not overtake it.
    expect(order).toEqual([]);
    w.release(60);
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
  });

  it('always admits into an empty window, even a request above the limit', () => {
    const w = new SendWindow(10);
    expect(w.acquire(1000)).toBeUndefined();
  });

  it('openAll wakes every waiter (a failed copy must not hang)', async () => {
    const w = new SendWindow(1);
    w.acquire(1);
    const waiting = [w.acquire(1)!, w.acquire(1)!];
    w.openAll();
    await Promise.all(waiting);
  });
});

describe('BufferPool', () => {
  it('hands back the buffer given last (the one still in cache)', () => {
    const pool = new BufferPool(16);
    const a = pool.take();
    const b = pool.take();
    expect(a).not.toBe(b);
    expect(a.length).toBe(16);
    pool.give(a);
    pool.give(b);
    expect(pool.take()).toBe(b);
    expect(pool.take()).toBe(a);
  });
});

const haveNbdkit = requireBinary('nbdkit');

describe.skipIf(!haveNbdkit)('client buffers against nbdkit', () => {
  let server: RunningServer | undefined;
  let client: NbdClient | undefined;
  afterEach(async () => {
    await client?.close();
    client = undefined;
    await server?.stop();
    server = undefined;
  });

  it('pwrite calls onSent once the payload is in the socket, in order; reusing the buffer then is safe', async () => {
    server = await startNbdkit(['memory', '8M']);
    client = await connect(server.uri);
    const size = 1 << 20;
    const sent: number[] = [];
    let allSent!: () => void;
    const allSentP = new Promise<void>((r) => { allSent = r; });
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 4; i++) {
      const buf = Buffer.alloc(size, i + 1);
      writes.push(client.pwrite(buf, i * size, undefined, () => {
        sent.push(i);
        // The payload has left: scribbling on the buffer must not change what was written.
        buf.fill(0xee);
        if (sent.length === 4) allSent();
      }));
    }
    // Node reports a batch of writes once all of it is written, so a reply can come first.
    await Promise.all([...writes, allSentP]);
    expect(sent).toEqual([0, 1, 2, 3]);
    for (let i = 0; i < 4; i++) {
      const back = Buffer.alloc(size);
      await client.pread(back, i * size);
      expect(back.equals(Buffer.alloc(size, i + 1))).toBe(true);
    }
  });

  it('large reads (received in place) and small reads in between give the right bytes', async () => {
    server = await startNbdkit(['pattern', '64M']);
    client = await connect(server.uri);
    const expected = (buf: Buffer, offset: number): boolean => {
      // nbdkit pattern: every 8-byte word holds its own offset, big-endian.
      for (let i = 0; i < buf.length; i += 8) {
        if (buf.readUInt32BE(i) * 2 ** 32 + buf.readUInt32BE(i + 4) !== offset + i) return false;
      }
      return true;
    };
    const jobs: Promise<boolean>[] = [];
    for (let i = 0; i < 48; i++) {
      const len = i % 3 === 0 ? 4096 : i % 3 === 1 ? 256 * 1024 : 1024 * 1024 + 512;
      const off = i * 1024 * 1024 + (i % 5) * 8;
      const buf = Buffer.alloc(len);
      jobs.push(client.pread(buf, off).then(() => expected(buf, off)));
    }
    expect(await Promise.all(jobs)).toEqual(new Array(48).fill(true));
  });
});
