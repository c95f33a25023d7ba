// requestBatch: a deep queue of requests leaves in groups (fewer socket writes, so fewer
// server wake-ups), every request still completes, and short runs are never held back.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect, type NbdClient } from '../src/client/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { teardownAfterEach } from './helpers/teardown.js';

const { servers, clients } = teardownAfterEach<RunningServer>();

const KiB = 1024;
const MiB = 1024 * KiB;

/** A client on a socket whose socket writes we count (one per writev after an uncork). */
async function countingClient(server: RunningServer, requestBatch?: number): Promise<{ client: NbdClient; writes: () => number }> {
  const socket = net.connect(server.unixSocket!);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let writes = 0;
  const writev = socket._writev!.bind(socket);
  const write = socket._write.bind(socket);
  socket._writev = (chunks, cb) => { writes++; writev(chunks, cb); };
  socket._write = (chunk, enc, cb) => { writes++; write(chunk, enc, cb); };
  const client = await connect({ socket }, { requestBatch, maxInFlight: 64 });
  clients.push(client);
  return { client, writes: () => writes };
}

/** `lanes` loops, each reading its own stripe one request at a time, like the copier's lanes. */
async function lanes(client: NbdClient, lanes: number, perLane: number, size: number): Promise<void> {
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    const buf = Buffer.alloc(size);
    for (let i = 0; i < perLane; i++) {
      const offset = (lane * perLane + i) * size;
      await client.pread(buf, offset);
      // The pattern backend stores each 8-byte word's own offset, big-endian.
      expect(buf.readBigUInt64BE(0)).toBe(BigInt(offset));
      expect(buf.readBigUInt64BE(size - 8)).toBe(BigInt(offset + size - 8));
    }
  }));
}

describe('requestBatch', () => {
  it('sends a deep queue in groups: far fewer socket writes, same replies', async () => {
    const s = await startServer({ backend: ['pattern', '64M'] });
    servers.push(s);
    const plain = await countingClient(s);
    const batched = await countingClient(s, 8);
    const before = [plain.writes(), batched.writes()];
    await lanes(plain.client, 48, 16, 64 * KiB);
    await lanes(batched.client, 48, 16, 64 * KiB);
    const plainWrites = plain.writes() - before[0]!;
    const batchedWrites = batched.writes() - before[1]!;
    // 768 reads each; batched, most writes carry 8 requests.
    expect(batchedWrites).toBeLessThan(768 / 4);
    expect(batchedWrites * 2).toBeLessThan(plainWrites);
  });

  it('never holds back a short run: one read, and fewer reads than a batch, complete', async () => {
    const s = await startServer({ backend: ['pattern', String(MiB)] });
    servers.push(s);
    const { client } = await countingClient(s, 8);
    const one = Buffer.alloc(4096);
    await client.pread(one, 8192);
    expect(one.readBigUInt64BE(0)).toBe(8192n);
    await lanes(client, 3, 2, 4096);
  });

  it('held requests wait in the client, never in a stream left corked across ticks', async () => {
    // Node keeps what is written behind a write in progress until the stream is uncorked:
    // a stream corked across ticks strands requests already counted as sent, and the client
    // then waits forever for their replies (seen as a rare hang in NBD -> NBD copies).
    const s = await startServer({ backend: ['pattern', '8M'], faults: { delays: { read: 200 } } });
    servers.push(s);
    const { client } = await countingClient(s, 8);
    const socket = (client as unknown as { stream: net.Socket }).stream;
    const buf = () => Buffer.alloc(4096);
    // 20 reads leave at once (a full batch); the server sits on them for 200 ms.
    const first = Array.from({ length: 20 }, (_, i) => client.pread(buf(), i * 4096));
    await new Promise((r) => setImmediate(r));
    // 3 more: fewer than a batch while the server has plenty, so they are held...
    const more = Array.from({ length: 3 }, (_, i) => client.pread(buf(), (20 + i) * 4096));
    await new Promise((r) => setImmediate(r));
    // ...by the client, with the socket free to finish what it was given.
    expect(socket.writableCorked).toBe(0);
    await Promise.all([...first, ...more]);
  });
});
