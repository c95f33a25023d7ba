// Raw bytes at our server: every validation error gets the right errno (and a message in
// structured/extended error chunks), option errors get the right reply type, a client that
// breaks the framing is dropped, and the server keeps serving the next client.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES,
  EXTENDED_REPLY_MAGIC, FLAG_C_NO_ZEROES, INFO_BLOCK_SIZE, NBD_EINVAL, NBD_ENOSPC, NBD_ENOTSUP, NBD_EOVERFLOW,
  NBD_EPERM, NBD_EIO, OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS, OPT_GO, OPT_INFO, OPT_LIST,
  OPT_LIST_META_CONTEXT, OPT_PEEK_EXPORT, OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK,
  REP_ERR_INVALID, REP_ERR_TLS_REQD, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_INFO, REP_META_CONTEXT, REP_SERVER,
  REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, REPLY_TYPE_NONE,
  REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
  decodeBlockStatus, decodeErrorChunk, decodeRepMetaContext, decodeRepServer, encodeInfoRequestPayload,
  encodeMetaContextPayload, NbdError,
} from '../src/protocol/index.js';
import { MemoryBackend, PatternBackend, fillPattern } from '../src/server/index.js';
import { RawNbd, embeddedStarter, type Embedded } from './helpers/embedded.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

async function raw(s: Embedded): Promise<RawNbd> {
  const r = await RawNbd.connect(s.socket);
  cleanups.push(() => r.destroy());
  return r;
}

interface Reply { error: number; type: number; flags: number; payload: Buffer; offset?: number }

/** Reads one reply of whatever style; READ payloads of simple replies are read when `readLength` is given. */
async function readReply(r: RawNbd, cookie: number, readLength = 0): Promise<Reply> {
  const magic = (await r.read(4)).readUInt32BE(0);
  if (magic === SIMPLE_REPLY_MAGIC) {
    const rest = await r.read(12);
    expect(rest.readUInt32BE(8)).toBe(cookie);
    const error = rest.readUInt32BE(0);
    const payload = error === 0 && readLength ? await r.read(readLength) : Buffer.alloc(0);
    return { error, type: -1, flags: REPLY_FLAG_DONE, payload };
  }
  if (magic === STRUCTURED_REPLY_MAGIC) {
    const rest = await r.read(16);
    expect(rest.readUInt32BE(8)).toBe(cookie);
    const len = rest.readUInt32BE(12);
    const payload = len ? await r.read(len) : Buffer.alloc(0);
    const type = rest.readUInt16BE(2);
    const error = type & 0x8000 ? payload.readUInt32BE(0) : 0;
    return { error, type, flags: rest.readUInt16BE(0), payload };
  }
  expect(magic).toBe(EXTENDED_REPLY_MAGIC);
  const rest = await r.read(28);
  expect(rest.readUInt32BE(8)).toBe(cookie);
  const len = rest.readUInt32BE(20) * 2 ** 32 + rest.readUInt32BE(24);
  const payload = len ? await r.read(len) : Buffer.alloc(0);
  const type = rest.readUInt16BE(2);
  const error = type & 0x8000 ? payload.readUInt32BE(0) : 0;
  return { error, type, flags: rest.readUInt16BE(0), payload, offset: rest.readUInt32BE(12) * 2 ** 32 + rest.readUInt32BE(16) };
}

/** All chunks of one reply, up to the one flagged DONE. */
async function readAll(r: RawNbd, cookie: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (;;) {
    const c = await readReply(r, cookie);
    out.push(c);
    if (c.flags & REPLY_FLAG_DONE) return out;
  }
}

async function expectServing(s: Embedded): Promise<void> {
  const r = await raw(s);
  await r.negotiate({ structured: true });
  r.sendRequest(CMD_READ, 0, 77, 0, 512);
  const chunks = await readAll(r, 77);
  expect(chunks.every((c) => c.error === 0)).toBe(true);
  r.sendRequest(CMD_DISC, 0, 78, 0, 0);
  expect(await r.closedByPeer()).toBe(true);
}

describe('option haggling', () => {
  it('answers LIST, INFO, unknown and malformed options, meta context queries and ABORT', async () => {
    const s = await serve({ exports: { a: { backend: new MemoryBackend(1 << 20), description: 'disk a' }, b: new PatternBackend(1 << 20) } });
    const r = await raw(s);
    await r.greet();
    const list = await r.option(OPT_LIST);
    expect(list.filter((x) => x.type === REP_SERVER).map((x) => decodeRepServer(x.payload))).toEqual([
      { name: 'a', description: 'disk a' }, { name: 'b', description: '' },
    ]);
    expect(list.at(-1)!.type).toBe(REP_ACK);
    expect((await r.option(OPT_LIST, Buffer.from('x')))[0]!.type).toBe(REP_ERR_INVALID);
    expect((await r.option(OPT_PEEK_EXPORT))[0]!.type).toBe(REP_ERR_UNSUP);
    expect((await r.option(999))[0]!.type).toBe(REP_ERR_UNSUP);
    expect((await r.option(OPT_STARTTLS))[0]!.type).toBe(REP_ERR_UNSUP);
    // INFO with a name length that runs past the payload is malformed.
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(100, 0);
    expect((await r.option(OPT_INFO, bad))[0]!.type).toBe(REP_ERR_INVALID);
    expect((await r.option(OPT_INFO, encodeInfoRequestPayload('nope', [])))[0]!.type).toBe(REP_ERR_UNKNOWN);
    const info = await r.option(OPT_INFO, encodeInfoRequestPayload('b', [INFO_BLOCK_SIZE]));
    expect(info.at(-1)!.type).toBe(REP_ACK);
    expect(info.filter((x) => x.type === REP_INFO).map((x) => x.payload.readUInt16BE(0))).toEqual([0, INFO_BLOCK_SIZE]);
    // Meta contexts need structured replies first.
    expect((await r.option(OPT_LIST_META_CONTEXT, encodeMetaContextPayload('a', [])))[0]!.type).toBe(REP_ERR_INVALID);
    expect((await r.option(OPT_STRUCTURED_REPLY, Buffer.from('x')))[0]!.type).toBe(REP_ERR_INVALID);
    expect((await r.option(OPT_STRUCTURED_REPLY))[0]!.type).toBe(REP_ACK);
    for (const queries of [[], ['base:'], ['base:allocation']]) {
      const lm = await r.option(OPT_LIST_META_CONTEXT, encodeMetaContextPayload('a', queries));
      expect(lm.map((x) => x.type)).toEqual([REP_META_CONTEXT, REP_ACK]);
      expect(decodeRepMetaContext(lm[0]!.payload).name).toBe('base:allocation');
    }
    // Unknown namespaces and leaves are ignored; "base:" selects nothing with SET.
    expect((await r.option(OPT_SET_META_CONTEXT, encodeMetaContextPayload('a', ['x-foo:bar', 'base:'])))[0]!.type).toBe(REP_ACK);
    const set = await r.option(OPT_SET_META_CONTEXT, encodeMetaContextPayload('a', ['base:allocation']));
    expect(set.map((x) => x.type)).toEqual([REP_META_CONTEXT, REP_ACK]);
    expect(decodeRepMetaContext(set[0]!.payload).id).not.toBe(0);
    expect((await r.option(OPT_EXTENDED_HEADERS, Buffer.from('x')))[0]!.type).toBe(REP_ERR_INVALID);
    r.sendOption(OPT_ABORT);
    expect((await r.readOptionReply()).type).toBe(REP_ACK);
    expect(await r.closedByPeer()).toBe(true);
    await expectServing(s);
  });

  it('NBD_OPT_EXPORT_NAME with and without NO_ZEROES; an unknown name disconnects', async () => {
    const s = await serve({ backend: new MemoryBackend(12345) });
    const r1 = await raw(s);
    await r1.greet();
    r1.sendOption(OPT_EXPORT_NAME, Buffer.from(''));
    const short = await r1.read(10);
    expect(short.readUInt32BE(4)).toBe(12345);
    r1.sendRequest(CMD_READ, 0, 1, 0, 10);
    // No 124 zero bytes: the next thing is the reply.
    expect((await r1.read(4)).readUInt32BE(0)).toBe(SIMPLE_REPLY_MAGIC);

    const r2 = await raw(s);
    await r2.greet(1); // fixed newstyle, but zeroes wanted
    r2.sendOption(OPT_EXPORT_NAME, Buffer.from(''));
    const long = await r2.read(134);
    expect(long.subarray(10).every((b) => b === 0)).toBe(true);

    const r3 = await raw(s);
    await r3.greet();
    r3.sendOption(OPT_EXPORT_NAME, Buffer.from('missing'));
    expect(await r3.closedByPeer()).toBe(true);
  });

  it('a plain newstyle client (no fixed flag) may use EXPORT_NAME, anything else disconnects', async () => {
    const s = await serve({ backend: new MemoryBackend(4096) });
    const r = await raw(s);
    await r.greet(FLAG_C_NO_ZEROES);
    r.sendOption(OPT_EXPORT_NAME, Buffer.alloc(0));
    expect((await r.read(10)).readUInt32BE(4)).toBe(4096);
    const r2 = await raw(s);
    await r2.greet(0);
    r2.sendOption(OPT_LIST);
    expect(await r2.closedByPeer()).toBe(true);
  });

  it('with TLS required, options other than STARTTLS/ABORT get TLS_REQD and EXPORT_NAME disconnects', async () => {
    // Credentials are loaded at start-up, so the key file must exist (no client gets that far).
    const dir = mkdtempSync(join(tmpdir(), 'server-violations-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const pskFile = join(dir, 'keys.psk');
    writeFileSync(pskFile, `alice:${'ab'.repeat(32)}\n`);
    const s = await serve({ backend: new MemoryBackend(4096), tls: { mode: 'require', pskFile } });
    const r = await raw(s);
    await r.greet();
    for (const opt of [OPT_LIST, OPT_STRUCTURED_REPLY, OPT_GO, OPT_INFO, 999]) {
      expect((await r.option(opt, opt === OPT_GO || opt === OPT_INFO ? encodeInfoRequestPayload('', []) : undefined))[0]!.type).toBe(REP_ERR_TLS_REQD);
    }
    r.sendOption(OPT_EXPORT_NAME, Buffer.alloc(0));
    expect(await r.closedByPeer()).toBe(true);
  });

  it('garbage instead of a handshake, bad client flags, an absurd option length: dropped, server fine', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20) });
    const g = await raw(s);
    await g.read(18);
    g.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await g.closedByPeer()).toBe(true);
    const f = await raw(s);
    await f.greet(0x80);
    expect(await f.closedByPeer()).toBe(true);
    const big = await raw(s);
    await big.greet();
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(0x49484156454f5054n, 0);
    h.writeUInt32BE(OPT_GO, 8);
    h.writeUInt32BE(0xfffffff0, 12);
    big.write(h);
    expect(await big.closedByPeer()).toBe(true);
    const gone = await raw(s);
    await gone.greet();
    gone.write(Buffer.from([0x49, 0x48]));
    gone.destroy();
    await expectServing(s);
    // The server sees those hang-ups when it next runs; on a busy machine that takes a while.
    for (let i = 0; i < 400 && s.connections !== 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(s.connections).toBe(0);
  });
});

describe('request validation', () => {
  for (const mode of ['simple', 'structured', 'extended'] as const) {
    it(`errors with ${mode} replies: bounds, read-only, flags, sizes, unknown commands`, async () => {
      const size = 1 << 20;
      const s = await serve({ exports: { rw: new MemoryBackend(size), ro: { backend: new PatternBackend(size) } } });
      const rw = await raw(s);
      await rw.negotiate({ structured: mode === 'structured', extended: mode === 'extended', exportName: 'rw' });
      const ro = await raw(s);
      await ro.negotiate({ structured: mode === 'structured', extended: mode === 'extended', exportName: 'ro' });
      let cookie = 100;
      const expectError = async (r: RawNbd, type: number, flags: number, offset: number, length: number, errno: number, payload?: Buffer): Promise<void> => {
        const c = ++cookie;
        r.sendRequest(type, flags, c, offset, length, payload);
        const chunks = await readAll(r, c);
        const err = chunks.find((x) => x.error !== 0);
        expect(err?.error, `cmd ${type} flags ${flags} [${offset},+${length})`).toBe(errno);
        if (mode !== 'simple') {
          expect(err!.type).toBe(REPLY_TYPE_ERROR);
          expect(decodeErrorChunk(err!.payload, 0, err!.payload.length, false).message.length).toBeGreaterThan(0);
        }
      };
      await expectError(rw, CMD_READ, 0, size - 10, 11, NBD_EINVAL);
      await expectError(rw, CMD_READ, 0, 2 ** 40, 1, NBD_EINVAL);
      await expectError(rw, CMD_WRITE, 0, size - 2, 4, NBD_ENOSPC, Buffer.alloc(4));
      await expectError(rw, CMD_WRITE_ZEROES, 0, size, 1, NBD_ENOSPC);
      await expectError(rw, CMD_TRIM, 0, size - 1, 2, NBD_EINVAL);
      await expectError(rw, CMD_CACHE, 0, size, 4096, NBD_EINVAL);
      await expectError(rw, CMD_READ, CMD_FLAG_NO_HOLE, 0, 512, NBD_EINVAL);
      await expectError(rw, CMD_WRITE, CMD_FLAG_REQ_ONE, 0, 4, NBD_EINVAL, Buffer.alloc(4));
      await expectError(rw, CMD_FLUSH, 0, 0, 512, NBD_EINVAL);
      await expectError(rw, 42, 0, 0, 0, NBD_EINVAL);
      // Block status without a selected context.
      await expectError(rw, CMD_BLOCK_STATUS, 0, 0, 4096, NBD_EINVAL);
      if (mode === 'simple') {
        await expectError(rw, CMD_READ, CMD_FLAG_DF, 0, 512, NBD_EINVAL);
        await expectError(rw, CMD_READ, 0, 0, 33 * 1024 * 1024, NBD_EINVAL);
      }
      // Writes bigger than the maximum payload: the payload is consumed, then EOVERFLOW.
      const big = new MemoryBackend(64 * 1024 * 1024);
      const s2 = await serve({ backend: big });
      const b = await raw(s2);
      await b.negotiate({ structured: mode === 'structured', extended: mode === 'extended' });
      await expectError(b, CMD_WRITE, 0, 0, 33 * 1024 * 1024, NBD_EOVERFLOW, Buffer.alloc(33 * 1024 * 1024, 1));
      expect(big.allocatedBytes).toBe(0);
      await expectError(b, CMD_READ, 0, 0, 33 * 1024 * 1024, mode === 'simple' ? NBD_EINVAL : NBD_EOVERFLOW);
      // Read-only export: writes of every kind are EPERM, and FUA was not offered.
      await expectError(ro, CMD_WRITE, 0, 0, 4, NBD_EPERM, Buffer.alloc(4));
      await expectError(ro, CMD_TRIM, 0, 0, 4096, NBD_EPERM);
      await expectError(ro, CMD_WRITE_ZEROES, 0, 0, 4096, NBD_EPERM);
      await expectError(ro, CMD_READ, CMD_FLAG_FUA, 0, 512, NBD_EINVAL);
      // Both connections still work after all that.
      for (const r of [rw, ro]) {
        const c = ++cookie;
        r.sendRequest(CMD_READ, 0, c, 4096, 16);
        const chunks = mode === 'simple' ? [await readReply(r, c, 16)] : await readAll(r, c);
        expect(chunks.every((x) => x.error === 0)).toBe(true);
      }
    });
  }

  it('requests split at every byte boundary, and many requests in one packet, parse the same', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20) });
    for (const extended of [false, true]) {
      const r = await raw(s);
      await r.negotiate({ extended, structured: !extended });
      const h = Buffer.alloc(extended ? 32 : 28);
      const build = (type: number, cookie: number, offset: number, length: number): Buffer => {
        const b = Buffer.alloc(h.length);
        b.writeUInt32BE(extended ? 0x21e41c71 : 0x25609513, 0);
        b.writeUInt16BE(type, 6);
        b.writeUInt32BE(cookie, 12);
        b.writeUInt32BE(offset, 20);
        if (extended) b.writeUInt32BE(length, 28);
        else b.writeUInt32BE(length, 24);
        return b;
      };
      const payload = Buffer.from('split-payload-bytes');
      const stream = Buffer.concat([build(CMD_WRITE, 1, 4000, payload.length), payload, build(CMD_READ, 2, 4000, payload.length)]);
      for (const byte of stream) {
        r.write(Buffer.from([byte]));
        await new Promise((res) => setImmediate(res));
      }
      const w = await readAll(r, 1);
      expect(w[0]!.error).toBe(0);
      const rd = await readAll(r, 2);
      expect(rd.map((c) => c.type)).toEqual([REPLY_TYPE_OFFSET_DATA]);
      expect(rd[0]!.payload.subarray(8).toString()).toBe('split-payload-bytes');
      // Many requests in one write: all answered.
      const many = Buffer.concat(Array.from({ length: 50 }, (_, i) => build(CMD_READ, 100 + i, i * 512, 512)));
      r.write(many);
      const seen = new Set<number>();
      for (let i = 0; i < 50; i++) {
        const magic = (await r.read(4)).readUInt32BE(0);
        const rest = await r.read(magic === STRUCTURED_REPLY_MAGIC ? 16 : 28);
        const len = magic === STRUCTURED_REPLY_MAGIC ? rest.readUInt32BE(12) : rest.readUInt32BE(24);
        await r.read(len);
        seen.add(rest.readUInt32BE(8));
      }
      expect(seen.size).toBe(50);
    }
  });

  it('a bad request magic or an absurd write length drops that client only', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20) });
    const r = await raw(s);
    await r.negotiate({ structured: true });
    const junk = Buffer.alloc(28, 0xee);
    r.write(junk);
    expect(await r.closedByPeer()).toBe(true);
    const e = await raw(s);
    await e.negotiate({ extended: true });
    e.sendRequest(CMD_WRITE, 0, 5, 0, 2 ** 40);
    expect(await e.closedByPeer()).toBe(true);
    // Disconnect in the middle of a write payload.
    const m = await raw(s);
    await m.negotiate({});
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(CMD_WRITE, 6);
    h.writeUInt32BE(65536, 24);
    m.write(Buffer.concat([h, Buffer.alloc(1000)]));
    await new Promise((res) => setTimeout(res, 20));
    m.destroy();
    await expectServing(s);
  });
});

describe('extended headers and structured replies on the wire', () => {
  it('extended: NONE chunks for success, 64-bit lengths, BLOCK_STATUS_EXT, holes, DF, REQ_ONE, FAST_ZERO', async () => {
    const size = 6 * 1024 ** 3;
    const mem = new MemoryBackend(size);
    const s = await serve({ backend: mem });
    const r = await raw(s);
    await r.negotiate({ extended: true, meta: true });
    const data = Buffer.alloc(8192, 0x61);
    const off = 5 * 1024 ** 3;
    r.sendRequest(CMD_WRITE, CMD_FLAG_FUA, 1, off, data.length, data);
    const w = await readAll(r, 1);
    expect(w.map((c) => [c.type, c.error, c.offset])).toEqual([[REPLY_TYPE_NONE, 0, off]]);
    // PAYLOAD_LEN on a write is allowed with extended headers.
    r.sendRequest(CMD_WRITE, CMD_FLAG_PAYLOAD_LEN, 2, off + 8192, 4, Buffer.from('abcd'));
    expect((await readAll(r, 2))[0]!.type).toBe(REPLY_TYPE_NONE);
    // A 6 GiB block status in one request: one BLOCK_STATUS_EXT chunk with 64-bit lengths.
    r.sendRequest(CMD_BLOCK_STATUS, 0, 3, 0, size);
    const bs = await readAll(r, 3);
    expect(bs).toHaveLength(1);
    expect(bs[0]!.type).toBe(REPLY_TYPE_BLOCK_STATUS_EXT);
    const ext = decodeBlockStatus(bs[0]!.payload, 0, bs[0]!.payload.length, true);
    // The 8196 bytes written lie in one 16 KiB page of the memory backend.
    expect(ext.extents).toEqual([
      { length: off, flags: 3 }, { length: 16384, flags: 0 }, { length: size - off - 16384, flags: 3 },
    ]);
    r.sendRequest(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 4, 0, size);
    const one = decodeBlockStatus((await readAll(r, 4))[0]!.payload, 0, 8 + 16, true);
    expect(one.extents).toEqual([{ length: off, flags: 3 }]);
    // Read across hole and data: a hole chunk then a data chunk; with DF one data chunk.
    r.sendRequest(CMD_READ, 0, 5, off - 4096, 8192);
    const rd = await readAll(r, 5);
    expect(rd.map((c) => c.type)).toEqual([REPLY_TYPE_OFFSET_HOLE, REPLY_TYPE_OFFSET_DATA]);
    expect(rd[1]!.payload.subarray(8).equals(Buffer.alloc(4096, 0x61))).toBe(true);
    r.sendRequest(CMD_READ, CMD_FLAG_DF, 6, off - 4096, 8192);
    const df = await readAll(r, 6);
    expect(df.map((c) => c.type)).toEqual([REPLY_TYPE_OFFSET_DATA]);
    expect(df[0]!.payload.subarray(8).equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 0x61)]))).toBe(true);
    // 64-bit zero length: zero 5 GiB at once (fast), then block status shows one big hole.
    r.sendRequest(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 7, 0, size);
    expect((await readAll(r, 7))[0]!.type).toBe(REPLY_TYPE_NONE);
    expect(mem.allocatedBytes).toBe(0);
    r.sendRequest(CMD_TRIM, 0, 8, 0, size);
    r.sendRequest(CMD_FLUSH, 0, 9, 0, 0);
    r.sendRequest(CMD_CACHE, 0, 10, 0, 4096);
    for (const c of [8, 9, 10]) expect((await readAll(r, c))[0]!.type).toBe(REPLY_TYPE_NONE);
    // PAYLOAD_LEN on a command that takes none is EINVAL, and its payload is skipped.
    r.sendRequest(CMD_READ, CMD_FLAG_PAYLOAD_LEN, 11, 0, 6, Buffer.from('ignore'));
    expect((await readAll(r, 11))[0]!.error).toBe(NBD_EINVAL);
    r.sendRequest(CMD_DISC, 0, 12, 0, 0);
    expect(await r.closedByPeer()).toBe(true);
  });

  it('structured: BLOCK_STATUS with 32-bit extents, FAST_ZERO ENOTSUP on a backend that cannot', async () => {
    const s = await serve({ backend: new MemoryBackend(8 * 1024 ** 3) });
    const r = await raw(s);
    await r.negotiate({ structured: true, meta: true });
    r.sendRequest(CMD_BLOCK_STATUS, 0, 1, 0, 0xffffffff);
    const bs = await readAll(r, 1);
    expect(bs[0]!.type).toBe(REPLY_TYPE_BLOCK_STATUS);
    expect(decodeBlockStatus(bs[0]!.payload, 0, bs[0]!.payload.length, false).extents).toEqual([{ length: 0xffffffff, flags: 3 }]);

    const slow = new MemoryBackend(1 << 20);
    Object.defineProperty(slow, 'canFastZero', { value: false });
    const s2 = await serve({ backend: slow });
    const r2 = await raw(s2);
    const { flags } = await r2.negotiate({ structured: true });
    expect(flags & (1 << 11)).toBe(0); // FAST_ZERO not advertised, so the flag is invalid
    r2.sendRequest(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 2, 0, 4096);
    expect((await readAll(r2, 2))[0]!.error).toBe(NBD_EINVAL);
    r2.sendRequest(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 3, 0, 4096);
    expect((await readAll(r2, 3))[0]!.error).toBe(0);

    // A backend that advertises fast zero but finds it cannot: ENOTSUP reaches the client.
    const picky = new MemoryBackend(1 << 20);
    picky.zero = (_o, _l, opts) => {
      if (opts.fast) throw new NbdError('ENOTSUP', 'not fast here');
    };
    const s3 = await serve({ backend: picky });
    const r3 = await raw(s3);
    await r3.negotiate({ structured: true });
    r3.sendRequest(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 4, 0, 4096);
    const e = (await readAll(r3, 4))[0]!;
    expect(e.error).toBe(NBD_ENOTSUP);
    expect(decodeErrorChunk(e.payload, 0, e.payload.length, false).message).toBe('not fast here');
  });

  it('replies out of order: a delayed read does not hold back a later flush', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20), faults: { delays: { read: 300 } } });
    const r = await raw(s);
    await r.negotiate({ structured: true });
    r.sendRequest(CMD_READ, 0, 1, 0, 4096);
    r.sendRequest(CMD_FLUSH, 0, 2, 0, 0);
    const first = (await r.read(16)).readUInt32BE(12);
    expect(first).toBe(2);
  });

  it('fault injection: error rate 1 gives EIO with a message; disconnect-after drops the connection', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20), faults: { errors: { read: { rate: 1, errno: 'EIO' } }, disconnectAfter: 2 } });
    const r = await raw(s);
    await r.negotiate({ structured: true });
    r.sendRequest(CMD_READ, 0, 1, 0, 512);
    const e = (await readAll(r, 1))[0]!;
    expect(e.error).toBe(NBD_EIO);
    expect(decodeErrorChunk(e.payload, 0, e.payload.length, false).message).toMatch(/injected/);
    r.sendRequest(CMD_WRITE, 0, 2, 0, 4, Buffer.from('abcd'));
    expect((await readAll(r, 2))[0]!.error).toBe(0);
    r.sendRequest(CMD_FLUSH, 0, 3, 0, 0);
    expect(await r.closedByPeer()).toBe(true);
  });

  it('simple replies: pattern data in one reply after the header', async () => {
    const s = await serve({ backend: new PatternBackend(1 << 20), structuredReplies: false });
    const r = await raw(s);
    r.extended = false;
    await r.greet();
    expect((await r.option(OPT_STRUCTURED_REPLY))[0]!.type).toBe(REP_ERR_UNSUP);
    expect((await r.option(OPT_EXTENDED_HEADERS))[0]!.type).toBe(REP_ERR_UNSUP);
    const go = await r.option(OPT_GO, encodeInfoRequestPayload('', []));
    expect(go.at(-1)!.type).toBe(REP_ACK);
    r.sendRequest(CMD_READ, 0, 9, 8 * 1000 + 3, 100);
    const rep = await readReply(r, 9, 100);
    const want = Buffer.alloc(100);
    fillPattern(want, 8 * 1000 + 3);
    expect(rep.payload.equals(want)).toBe(true);
  });
});
