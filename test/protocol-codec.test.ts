// Byte vectors written by hand from the protocol document: every codec both ways.
import { describe, expect, it } from 'vitest';
import * as P from '../src/protocol/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const NBDMAGIC = '4e42444d41474943';
const IHAVEOPT = '49484156454f5054';
const CLISERV = '0000420281861253';
const REPMAGIC = '0003e889045565a9';

describe('u64 helpers', () => {
  it('round-trips values above 2^32 as numbers', () => {
    const b = Buffer.alloc(8);
    P.writeU64(b, 0, 2 ** 40 + 5);
    expect(b).toEqual(hex('0000010000000005'));
    expect(P.readU64(b, 0)).toBe(2 ** 40 + 5);
    P.writeU64(b, 0, Number.MAX_SAFE_INTEGER);
    expect(P.readU64(b, 0)).toBe(Number.MAX_SAFE_INTEGER);
  });
  it('refuses negative or unsafe values', () => {
    expect(() => P.writeU64(Buffer.alloc(8), 0, -1)).toThrow(P.NbdError);
    expect(() => P.writeU64(Buffer.alloc(8), 0, 2 ** 60)).toThrow(/64-bit/);
  });
});

describe('handshake', () => {
  it('oldstyle handshake is 152 bytes', () => {
    const b = Buffer.alloc(152, 0xff);
    expect(P.encodeOldstyleHandshake(b, 0, { size: 0x1_0000_0000, flags: 0x3 })).toBe(152);
    expect(b.subarray(0, 28)).toEqual(hex(NBDMAGIC + CLISERV + '0000000100000000' + '00000003'));
    expect(b.subarray(28).every((x) => x === 0)).toBe(true);
    expect(P.decodeGreetingPrefix(b)).toBe('oldstyle');
    expect(P.decodeOldstyleHandshake(b)).toEqual({ size: 2 ** 32, exactSize: 2n ** 32n, flags: 3 });
  });
  it('newstyle greeting and client flags', () => {
    const b = Buffer.alloc(18);
    P.encodeNewstyleGreeting(b, 0, P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES);
    expect(b).toEqual(hex(NBDMAGIC + IHAVEOPT + '0003'));
    expect(P.decodeGreetingPrefix(b)).toBe('newstyle');
    expect(P.decodeNewstyleGreeting(b)).toBe(3);
    const c = Buffer.alloc(4);
    P.encodeClientFlags(c, 0, P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES);
    expect(c).toEqual(hex('00000003'));
    expect(P.decodeClientFlags(c)).toBe(3);
  });
  it('bad greeting magic is EPROTO', () => {
    const b = hex('0000000000000000' + IHAVEOPT);
    expect(() => P.decodeGreetingPrefix(b)).toThrow(expect.objectContaining({ code: 'EPROTO' }));
    expect(() => P.decodeGreetingPrefix(hex(NBDMAGIC + '1111111111111111'))).toThrow(/second greeting magic/);
  });
  it('export name reply with and without zeroes', () => {
    const long = Buffer.alloc(134, 0xee);
    expect(P.encodeExportNameReply(long, 0, { size: 1024, transmissionFlags: 0x1ed }, false)).toBe(134);
    expect(long.subarray(0, 10)).toEqual(hex('0000000000000400 01ed'));
    expect(long.subarray(10).every((x) => x === 0)).toBe(true);
    const short = Buffer.alloc(10);
    expect(P.encodeExportNameReply(short, 0, { size: 1024, transmissionFlags: 0x1ed }, true)).toBe(10);
    expect(P.decodeExportNameReply(short)).toEqual({ size: 1024, exactSize: 1024n, transmissionFlags: 0x1ed });
    expect(P.exportNameReplySize(false)).toBe(134);
  });
});

describe('option requests', () => {
  it('header', () => {
    const b = Buffer.alloc(16);
    P.encodeOptionHeader(b, 0, P.OPT_GO, 0x1234);
    expect(b).toEqual(hex(IHAVEOPT + '00000007 00001234'));
    expect(P.decodeOptionHeader(b)).toEqual({ option: 7, length: 0x1234 });
    expect(P.buildOption(P.OPT_ABORT)).toEqual(hex(IHAVEOPT + '00000002 00000000'));
    expect(() => P.decodeOptionHeader(hex('00'.repeat(16)))).toThrow(/option magic/);
  });
  it('export name payload', () => {
    expect(P.encodeExportNamePayload('dé')).toEqual(hex('64c3a9'));
    expect(P.decodeExportNamePayload(hex('64c3a9'))).toBe('dé');
  });
  it('GO/INFO payload with info requests', () => {
    const p = P.encodeInfoRequestPayload('ab', [P.INFO_NAME, P.INFO_BLOCK_SIZE]);
    expect(p).toEqual(hex('00000002 6162 0002 0001 0003'));
    expect(P.decodeInfoRequestPayload(p)).toEqual({ exportName: 'ab', requests: [1, 3] });
    expect(() => P.decodeInfoRequestPayload(hex('00000002 6162 0002 0001'))).toThrow(/do not match/);
    expect(() => P.decodeInfoRequestPayload(hex('00000009 6162'))).toThrow(/runs past/);
  });
  it('meta context payload', () => {
    const p = P.encodeMetaContextPayload('', ['base:allocation', 'qemu:']);
    expect(p).toEqual(
      hex('00000000 00000002 0000000f' + Buffer.from('base:allocation').toString('hex') + '00000005 71656d753a'),
    );
    expect(P.decodeMetaContextPayload(p)).toEqual({ exportName: '', queries: ['base:allocation', 'qemu:'] });
    expect(P.decodeMetaContextPayload(hex('00000001 78 00000000'))).toEqual({ exportName: 'x', queries: [] });
  });
});

describe('option replies', () => {
  it('header', () => {
    const b = Buffer.alloc(20);
    P.encodeOptionReplyHeader(b, 0, { option: P.OPT_LIST, type: P.REP_ERR_UNSUP, length: 5 });
    expect(b).toEqual(hex(REPMAGIC + '00000003 80000001 00000005'));
    expect(P.decodeOptionReplyHeader(b)).toEqual({ option: 3, type: 0x80000001, length: 5 });
    expect(P.isErrorReply(0x80000001)).toBe(true);
    expect(P.isErrorReply(P.REP_ACK)).toBe(false);
    expect(P.buildOptionReply(P.OPT_GO, P.REP_ACK)).toEqual(hex(REPMAGIC + '00000007 00000001 00000000'));
    expect(() => P.decodeOptionReplyHeader(hex(IHAVEOPT + '00'.repeat(12)))).toThrow(/reply magic/);
  });
  it('REP_SERVER', () => {
    const p = P.encodeRepServer('a', 'desc');
    expect(p).toEqual(hex('00000001 61 64657363'));
    expect(P.decodeRepServer(p)).toEqual({ name: 'a', description: 'desc' });
    expect(P.decodeRepServer(hex('00000000'))).toEqual({ name: '', description: '' });
  });
  it('REP_INFO items', () => {
    const ex = P.encodeRepInfo({ type: P.INFO_EXPORT, size: 2 ** 33, transmissionFlags: 0x4d });
    expect(ex).toEqual(hex('0000 0000000200000000 004d'));
    expect(P.decodeRepInfo(ex)).toEqual({ type: 0, size: 2 ** 33, exactSize: 2n ** 33n, transmissionFlags: 0x4d });
    const nm = P.encodeRepInfo({ type: P.INFO_NAME, name: 'x' });
    expect(nm).toEqual(hex('0001 78'));
    expect(P.decodeRepInfo(nm)).toEqual({ type: 1, name: 'x' });
    const ds = P.encodeRepInfo({ type: P.INFO_DESCRIPTION, description: 'hi' });
    expect(ds).toEqual(hex('0002 6869'));
    expect(P.decodeRepInfo(ds)).toEqual({ type: 2, description: 'hi' });
    const bs = P.encodeRepInfo({ type: P.INFO_BLOCK_SIZE, minimum: 512, preferred: 4096, maximum: 0x2000000 });
    expect(bs).toEqual(hex('0003 00000200 00001000 02000000'));
    expect(P.decodeRepInfo(bs)).toEqual({ type: 3, minimum: 512, preferred: 4096, maximum: 0x2000000 });
    expect(P.decodeRepInfo(hex('0009 0102'))).toEqual({ type: 'unknown', infoType: 9 });
    expect(() => P.decodeRepInfo(hex('0000 00'))).toThrow(/expected 12/);
  });
  it('REP_META_CONTEXT and error text', () => {
    const p = P.encodeRepMetaContext(7, 'base:allocation');
    expect(p.subarray(0, 4)).toEqual(hex('00000007'));
    expect(P.decodeRepMetaContext(p)).toEqual({ id: 7, name: 'base:allocation' });
    expect(P.decodeErrorText(P.encodeErrorText('no such export'))).toBe('no such export');
  });
});

describe('requests', () => {
  it('compact request is 28 bytes', () => {
    const b = Buffer.alloc(28);
    expect(P.encodeCompactRequest(b, 0, P.CMD_FLAG_FUA, P.CMD_WRITE, 0x0102030405, 2 ** 35, 0x10000)).toBe(28);
    expect(b).toEqual(hex('25609513 0001 0001 0000000102030405 0000000800000000 00010000'));
    expect(P.decodeRequest(b, 0, false)).toEqual({
      flags: 1, type: 1, cookie: 0x0102030405, offset: 2 ** 35, length: 0x10000, extended: false,
    });
  });
  it('extended request is 32 bytes with a 64-bit length', () => {
    const b = Buffer.alloc(32);
    expect(P.encodeExtendedRequest(b, 0, 0, P.CMD_BLOCK_STATUS, 9, 0, 2 ** 33)).toBe(32);
    expect(b).toEqual(hex('21e41c71 0000 0007 0000000000000009 0000000000000000 0000000200000000'));
    expect(P.decodeRequest(b, 0, true)).toMatchObject({ type: 7, cookie: 9, length: 2 ** 33, extended: true });
    expect(() => P.decodeRequest(b, 0, false)).toThrow(/request magic/);
    const c = Buffer.alloc(32);
    P.encodeRequest(c, 0, { flags: 0, type: P.CMD_BLOCK_STATUS, cookie: 9, offset: 0, length: 2 ** 33 }, true);
    expect(c).toEqual(b);
  });
  it('a request header keeps any 64-bit cookie as two exact halves', () => {
    const b = hex('21e41c71 0001 0001 fedcba9876543210 0000000800000000 0000000000001000');
    const h = { flags: 0, type: 0, cookieHi: 0, cookieLo: 0, offset: 0, length: 0 };
    P.decodeRequestHeader(b, 0, true, h);
    expect(h).toEqual({ flags: 1, type: 1, cookieHi: 0xfedcba98, cookieLo: 0x76543210, offset: 2 ** 35, length: 4096 });
    const c = Buffer.alloc(32);
    P.encodeExtendedRequest(c, 0, 1, 1, h, 2 ** 35, 4096);
    expect(c).toEqual(b);
    expect(() => P.decodeRequestHeader(b, 0, false, h)).toThrow(/bad request magic 0x21e41c71, expected 0x25609513/);
    expect(() => P.decodeRequestHeader(b.subarray(0, 31), 0, true, h)).toThrow(/need 32 bytes/);
    expect(P.cookieNumber({ cookieHi: 1, cookieLo: 2 })).toBe(2 ** 32 + 2);
  });
  it('which requests carry a payload', () => {
    expect(P.requestHasPayload(P.CMD_WRITE, 0, false)).toBe(true);
    expect(P.requestHasPayload(P.CMD_READ, 0, false)).toBe(false);
    expect(P.requestHasPayload(P.CMD_BLOCK_STATUS, P.CMD_FLAG_PAYLOAD_LEN, true)).toBe(true);
    // Without extended headers the flag means nothing: no payload follows.
    expect(P.requestHasPayload(P.CMD_BLOCK_STATUS, P.CMD_FLAG_PAYLOAD_LEN, false)).toBe(false);
  });
});

describe('reply headers', () => {
  it('simple reply', () => {
    const b = Buffer.alloc(16);
    P.encodeSimpleReply(b, 0, P.NBD_EIO, 42);
    expect(b).toEqual(hex('67446698 00000005 000000000000002a'));
    const h = P.newReplyHeader();
    expect(P.decodeReplyHeader(b, 0, h)).toBe(16);
    expect(h).toMatchObject({ kind: 'simple', error: 5, cookie: 42, length: 0 });
  });
  it('structured chunk header', () => {
    const b = Buffer.alloc(20);
    P.encodeStructuredReplyHeader(b, 0, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, 3, 4104);
    expect(b).toEqual(hex('668e33ef 0001 0001 0000000000000003 00001008'));
    const h = P.newReplyHeader();
    expect(P.decodeReplyHeader(b, 0, h)).toBe(20);
    expect(h).toMatchObject({ kind: 'structured', flags: 1, type: 1, cookie: 3, length: 4104, offset: 0 });
  });
  it('extended reply header', () => {
    const b = Buffer.alloc(32);
    P.encodeExtendedReplyHeader(b, 0, 0, P.REPLY_TYPE_BLOCK_STATUS_EXT, 4, 2 ** 32, 40);
    expect(b).toEqual(hex('6e8a278c 0000 0006 0000000000000004 0000000100000000 0000000000000028'));
    const h = P.newReplyHeader();
    expect(P.decodeReplyHeader(b, 0, h)).toBe(32);
    expect(h).toMatchObject({ kind: 'extended', type: 6, cookie: 4, offset: 2 ** 32, length: 40 });
  });
  it('a received cookie goes back unchanged, in every header', () => {
    const cookie = { cookieHi: 0xffffffff, cookieLo: 0x80000001 };
    const simple = Buffer.alloc(16);
    P.encodeSimpleReply(simple, 0, 0, cookie);
    expect(simple).toEqual(hex('67446698 00000000 ffffffff80000001'));
    const chunk = Buffer.alloc(32);
    expect(P.encodeChunkHeader(chunk, 0, false, P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, cookie, 2 ** 32, 0)).toBe(20);
    expect(chunk.subarray(0, 20)).toEqual(hex('668e33ef 0001 0000 ffffffff80000001 00000000'));
    expect(P.encodeChunkHeader(chunk, 0, true, P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, cookie, 2 ** 32, 0)).toBe(32);
    expect(chunk).toEqual(hex('6e8a278c 0001 0000 ffffffff80000001 0000000100000000 0000000000000000'));
    expect(P.chunkHeaderSize(false)).toBe(20);
    expect(P.chunkHeaderSize(true)).toBe(32);
  });
  it('unknown magic', () => {
    expect(() => P.replyHeaderSize(0xdeadbeef)).toThrow(/bad reply magic 0xdeadbeef/);
    expect(P.replyHeaderSize(0x668e33ef)).toBe(20);
  });
});

describe('chunk payloads', () => {
  it('OFFSET_DATA header', () => {
    const b = Buffer.alloc(8);
    P.encodeOffsetDataHeader(b, 0, 4096);
    expect(b).toEqual(hex('0000000000001000'));
    expect(P.decodeOffsetDataHeader(b, 0)).toBe(4096);
  });
  it('OFFSET_HOLE, 12 and 16 bytes', () => {
    const b = Buffer.alloc(16);
    expect(P.encodeOffsetHole(b, 0, 512, 1024, false)).toBe(12);
    expect(b.subarray(0, 12)).toEqual(hex('0000000000000200 00000400'));
    expect(P.decodeOffsetHole(b, 0, 12)).toEqual({ offset: 512, size: 1024 });
    expect(P.encodeOffsetHole(b, 0, 512, 2 ** 33, true)).toBe(16);
    expect(b).toEqual(hex('0000000000000200 0000000200000000'));
    expect(P.decodeOffsetHole(b, 0, 16)).toEqual({ offset: 512, size: 2 ** 33 });
    expect(() => P.decodeOffsetHole(b, 0, 13)).toThrow(/expected 12 or 16/);
    expect(() => P.decodeOffsetHole(hex('0000000000000200 00000000'), 0, 12)).toThrow(/zero size/);
  });
  it('BLOCK_STATUS (32-bit)', () => {
    const ext = [{ length: 4096, flags: 3 }, { length: 8192, flags: 0 }];
    const b = Buffer.alloc(P.blockStatusPayloadSize(2, false));
    expect(P.encodeBlockStatus(b, 0, 1, ext, false)).toBe(20);
    expect(b).toEqual(hex('00000001 00001000 00000003 00002000 00000000'));
    expect(P.decodeBlockStatus(b, 0, 20, false)).toEqual({ contextId: 1, extents: ext });
    expect(() => P.decodeBlockStatus(b, 0, 16, false)).toThrow(/multiple of 8/);
  });
  it('BLOCK_STATUS_EXT (64-bit)', () => {
    const ext = [{ length: 2 ** 33, flags: 1 }];
    const b = Buffer.alloc(P.blockStatusPayloadSize(1, true));
    expect(P.encodeBlockStatus(b, 0, 2, ext, true)).toBe(24);
    expect(b).toEqual(hex('00000002 00000001 0000000200000000 0000000000000001'));
    expect(P.decodeBlockStatus(b, 0, 24, true)).toEqual({ contextId: 2, extents: ext });
    b.writeUInt32BE(2, 4);
    expect(() => P.decodeBlockStatus(b, 0, 24, true)).toThrow(/says 2 descriptors/);
  });
  it('ERROR and ERROR_OFFSET', () => {
    const b = Buffer.alloc(P.errorChunkSize('bad', true));
    expect(P.encodeErrorChunk(b, 0, P.NBD_EIO, 'bad', 4096)).toBe(17);
    expect(b).toEqual(hex('00000005 0003 626164 0000000000001000'));
    expect(P.decodeErrorChunk(b, 0, 17, true)).toEqual({ error: 5, message: 'bad', offset: 4096 });
    const e = Buffer.alloc(6);
    P.encodeErrorChunk(e, 0, P.NBD_EPERM, '');
    expect(e).toEqual(hex('00000001 0000'));
    expect(P.decodeErrorChunk(e, 0, 6, false)).toEqual({ error: 1, message: '' });
    expect(() => P.decodeErrorChunk(hex('00000005 0009 6162'), 0, 8, false)).toThrow(/does not fit/);
  });
});

describe('names and errors', () => {
  it('names options and replies', () => {
    expect(P.optionName(P.OPT_GO)).toBe('NBD_OPT_GO');
    expect(P.optionReplyName(P.REP_ERR_UNSUP)).toBe('NBD_REP_ERR_UNSUP');
    expect(P.codeFromWire(P.NBD_ENOSPC)).toBe('ENOSPC');
    expect(P.wireFromCode('ENOTSUP')).toBe(95);
  });
});
