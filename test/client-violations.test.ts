// Protocol violations and unusual-but-legal replies, played by a scripted fake server. Every
// violation must reject promptly with a clear NbdError and fail later commands too.
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import * as P from '../src/protocol/index.js';
import { startFakeServer, type FakePeer, type FakeServer } from './helpers/fake-server.js';
import { teardownAfterEach } from './helpers/teardown.js';

const { servers, open } = teardownAfterEach<FakeServer>();

async function fake(script: (peer: FakePeer) => Promise<void>): Promise<FakeServer> {
  const s = await startFakeServer(script);
  servers.push(s);
  return s;
}

function chunkHeader(flags: number, type: number, cookie: number, length: number): Buffer {
  const b = Buffer.alloc(20);
  P.encodeStructuredReplyHeader(b, 0, flags, type, cookie, length);
  return b;
}

function offsetData(cookie: number, offset: number, data: Buffer, done = true): Buffer {
  const h = chunkHeader(done ? P.REPLY_FLAG_DONE : 0, P.REPLY_TYPE_OFFSET_DATA, cookie, 8 + data.length);
  const o = Buffer.alloc(8);
  P.encodeOffsetDataHeader(o, 0, offset);
  return Buffer.concat([h, o, data]);
}

const T = { timeout: 5000 };

describe('protocol violations', () => {
  it('bad greeting magic fails the connect with EPROTO', T, async () => {
    const s = await fake(async (p) => p.write(Buffer.from('HELLO, NOT NBD!!!!')));
    await expect(connect(s.uri)).rejects.toMatchObject({ code: 'EPROTO', message: /greeting magic/ });
  });

  it('server closing during negotiation fails the connect with ECONNRESET', T, async () => {
    const s = await fake(async (p) => {
      await p.greet();
      await p.readOption();
      p.destroy();
    });
    await expect(connect(s.uri)).rejects.toMatchObject({ code: 'ECONNRESET', message: /handshake/ });
  });

  it('bad reply magic kills the connection; pending and later commands fail', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      await p.readRequest();
      await p.readRequest();
      p.write(Buffer.from('\xde\xad\xbe\xef'.repeat(8), 'latin1'));
    });
    const c = await open(s.uri);
    const a = c.pread(Buffer.alloc(512), 0);
    const b = c.pread(Buffer.alloc(512), 512);
    await expect(a).rejects.toMatchObject({ code: 'EPROTO', message: /bad reply magic/ });
    await expect(b).rejects.toMatchObject({ code: 'EPROTO' });
    expect(c.state).toBe('dead');
    await expect(c.flush()).rejects.toMatchObject({ code: 'EPROTO' });
  });

  it('reply with an unknown cookie', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r = await p.readRequest();
      const b = Buffer.alloc(16);
      P.encodeSimpleReply(b, 0, 0, r.cookie + 1000);
      p.write(b);
    });
    const c = await open(s.uri);
    await expect(c.flush()).rejects.toMatchObject({ code: 'EPROTO', message: /unknown cookie/ });
  });

  it('chunk longer than the request', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r = await p.readRequest();
      p.write(offsetData(r.cookie, 0, Buffer.alloc(r.length * 2)));
    });
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'EPROTO', message: /longer than the request/ });
  });

  it('OFFSET_DATA outside the request', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r = await p.readRequest();
      p.write(offsetData(r.cookie, r.offset + 2048, Buffer.alloc(4096)));
    });
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 8192)).rejects.toMatchObject({ code: 'EPROTO', message: /outside the request/ });
  });

  it('EOF in the middle of a reply', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r = await p.readRequest();
      p.write(offsetData(r.cookie, 0, Buffer.alloc(4096)).subarray(0, 100));
      p.end();
    });
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'ECONNRESET', message: /middle of a reply/ });
  });

  it('a server that accepts but never speaks times out', T, async () => {
    const s = await fake(() => new Promise(() => undefined));
    await expect(connect(s.uri, { handshakeTimeoutMs: 200 })).rejects.toMatchObject({ code: 'ETIMEDOUT', message: /no answer/ });
  });

  it('server closing with commands in flight', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      await p.readRequest();
      p.destroy();
    });
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'ECONNRESET', message: /closed the connection/ });
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('successful read that does not cover the request is EIO', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r = await p.readRequest();
      p.write(offsetData(r.cookie, 0, Buffer.alloc(1024)));
    });
    const c = await open(s.uri);
    await expect(c.pread(Buffer.alloc(4096), 0)).rejects.toMatchObject({ code: 'EIO', message: /only 1024 of 4096/ });
  });
});

describe('legal but unusual replies', () => {
  it('out-of-order structured chunks, holes zero-filled, error chunk with a message', T, async () => {
    const s = await fake(async (p) => {
      await p.negotiate(1 << 20);
      const r1 = await p.readRequest();
      const r2 = await p.readRequest();
      const r3 = await p.readRequest();
      // r2 first, in two pieces: data then a hole
      p.write(offsetData(r2.cookie, r2.offset, Buffer.alloc(2048, 0x22), false));
      const hole = Buffer.alloc(12);
      P.encodeOffsetHole(hole, 0, r2.offset + 2048, 2048, false);
      p.write(Buffer.concat([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_HOLE, r2.cookie, 12), hole]));
      // r3 fails with a message
      const msg = 'disk on fire';
      const e = Buffer.alloc(P.errorChunkSize(msg, false));
      P.encodeErrorChunk(e, 0, P.NBD_ENOSPC, msg);
      p.write(Buffer.concat([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, r3.cookie, e.length), e]));
      // r1 last, byte by byte to exercise the incremental parser
      const all = offsetData(r1.cookie, r1.offset, Buffer.alloc(4096, 0x11));
      for (let i = 0; i < all.length; i += 7) p.write(all.subarray(i, i + 7));
    });
    const c = await open(s.uri);
    const b1 = Buffer.alloc(4096);
    const b2 = Buffer.alloc(4096, 0xff);
    const p1 = c.pread(b1, 0);
    const p2 = c.pread(b2, 4096);
    const p3 = c.pread(Buffer.alloc(512), 8192);
    await expect(p3).rejects.toMatchObject({ code: 'ENOSPC', serverMessage: 'disk on fire' });
    await p2;
    await p1;
    expect(b1.every((x) => x === 0x11)).toBe(true);
    expect(b2.subarray(0, 2048).every((x) => x === 0x22) && b2.subarray(2048).every((x) => x === 0)).toBe(true);
    expect(c.state).toBe('ready');
  });

  it('falls back to NBD_OPT_EXPORT_NAME when the server lacks NBD_OPT_GO', T, async () => {
    const s = await fake(async (p) => {
      await p.greet();
      for (;;) {
        const { option, payload } = await p.readOption();
        if (option === P.OPT_EXPORT_NAME) {
          expect(payload.toString()).toBe('disk');
          const b = Buffer.alloc(10);
          P.encodeExportNameReply(b, 0, { size: 65536, transmissionFlags: P.FLAG_HAS_FLAGS | P.FLAG_READ_ONLY }, true);
          p.write(b);
          const r = await p.readRequest();
          const sr = Buffer.alloc(16);
          P.encodeSimpleReply(sr, 0, 0, r.cookie);
          p.write(Buffer.concat([sr, Buffer.alloc(r.length, 7)]));
          return;
        }
        p.reply(option, P.REP_ERR_UNSUP);
      }
    });
    const c = await open(s.uri.replace(':///', ':///disk'));
    expect(c.export).toMatchObject({ exportName: 'disk', size: 65536, readOnly: true });
    expect(c.connection.structuredReplies).toBe(false);
    const b = Buffer.alloc(100);
    await c.pread(b, 0);
    expect(b.every((x) => x === 7)).toBe(true);
  });

  it('extended headers: 64-bit requests, extended replies, BLOCK_STATUS_EXT, 16-byte holes', T, async () => {
    const size = 2 ** 33;
    const s = await fake(async (p) => {
      await p.greet();
      for (;;) {
        const { option } = await p.readOption();
        if (option === P.OPT_EXTENDED_HEADERS) p.reply(option, P.REP_ACK);
        else if (option === P.OPT_SET_META_CONTEXT) {
          p.reply(option, P.REP_META_CONTEXT, P.encodeRepMetaContext(5, 'base:allocation'));
          p.reply(option, P.REP_ACK);
        } else if (option === P.OPT_GO) {
          p.reply(option, P.REP_INFO, P.encodeRepInfo({ type: P.INFO_EXPORT, size, transmissionFlags: P.FLAG_HAS_FLAGS }));
          p.reply(option, P.REP_INFO, P.encodeRepInfo({ type: P.INFO_BLOCK_SIZE, minimum: 1, preferred: 4096, maximum: 1 << 20 }));
          p.reply(option, P.REP_ACK);
          break;
        } else p.reply(option, P.REP_ERR_UNSUP);
      }
      // block status over 8 GiB
      const bs = P.decodeRequest(await p.read(32), 0, true);
      expect(bs).toMatchObject({ type: P.CMD_BLOCK_STATUS, offset: 0, length: size });
      const ext = [{ length: 2 ** 32 + 4096, flags: 3 }, { length: 2 ** 32 - 4096, flags: 0 }];
      const body = Buffer.alloc(P.blockStatusPayloadSize(2, true));
      P.encodeBlockStatus(body, 0, 5, ext, true);
      const h = Buffer.alloc(32);
      P.encodeExtendedReplyHeader(h, 0, P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS_EXT, bs.cookie, 0, body.length);
      p.write(Buffer.concat([h, body]));
      // read above 4 GiB answered by one 16-byte hole
      const rd = P.decodeRequest(await p.read(32), 0, true);
      const hole = Buffer.alloc(16);
      P.encodeOffsetHole(hole, 0, rd.offset, rd.length, true);
      P.encodeExtendedReplyHeader(h, 0, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_HOLE, rd.cookie, rd.offset, 16);
      p.write(Buffer.concat([h, hole]));
    });
    const c = await open(s.uri);
    expect(c.connection).toMatchObject({ extendedHeaders: true, structuredReplies: true, metaContexts: ['base:allocation'] });
    const bs = await c.blockStatus(size, 0);
    expect(bs.get('base:allocation')).toEqual([{ length: 2 ** 32 + 4096, flags: 3 }, { length: 2 ** 32 - 4096, flags: 0 }]);
    const b = Buffer.alloc(65536, 9);
    await c.pread(b, 2 ** 32 + 65536);
    expect(b.every((x) => x === 0)).toBe(true);
  });

  it('TLS required but refused by the server fails; allow falls back to plaintext', T, async () => {
    const script = async (p: FakePeer): Promise<void> => {
      await p.greet();
      for (;;) {
        const { option } = await p.readOption();
        if (option === P.OPT_GO) {
          p.reply(option, P.REP_INFO, P.encodeRepInfo({ type: P.INFO_EXPORT, size: 4096, transmissionFlags: P.FLAG_HAS_FLAGS }));
          p.reply(option, P.REP_ACK);
          await new Promise((r) => p.socket.once('close', r));
          return;
        }
        p.reply(option, P.REP_ERR_POLICY, P.encodeErrorText('no TLS here'));
      }
    };
    const s = await fake(script);
    await expect(connect(s.uri, { tls: { mode: 'require' } })).rejects.toMatchObject({ code: 'EPERM', message: /TLS is required/ });
    await expect(connect(s.uri.replace('nbd+unix', 'nbds+unix'))).rejects.toMatchObject({ code: 'EPERM' });
    const c = await open(s.uri, { tls: { mode: 'allow' } });
    expect(c.connection.tls).toBe(false);
    expect(c.export.size).toBe(4096);
  });
});
