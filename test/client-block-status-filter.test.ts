// blockStatusFilter (libnbd's block_status_filter, NBD_CMD_FLAG_PAYLOAD_LEN) and our server's
// side of it. None of nbdkit 1.32, qemu-nbd 7.2 or libnbd 1.14 speaks extended headers, so the
// payload form runs against nbdserve only (also in front of qemu-nbd, for a filter that leaves
// contexts out); against nbdkit and qemu-nbd the call must fail with libnbd's typed error
// before anything is sent.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFilteredReply, filterIds } from '../src/client/block-status-filter.js';
import { strictChecks } from '../src/client/strict-mode.js';
import { connect, type ConnectionInfo, type ExportInfo, type NbdClient } from '../src/index.js';
import {
  CMD_BLOCK_STATUS, CMD_FLAG_PAYLOAD_LEN, EXTENDED_REPLY_SIZE, FLAG_BLOCK_STATUS_PAYLOAD, NBD_EINVAL,
  REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, blockStatusFilterSize, decodeBlockStatusFilter,
  encodeBlockStatusFilter,
} from '../src/protocol/index.js';
import { checkRequest, type RequestRules } from '../src/server/request-check.js';
import type { Backend } from '../src/server/index.js';
import { ReplyStyle } from '../src/protocol/replies.js';
import { requireBinaries, requireBinary } from './helpers/binaries.js';
import { RawNbd, embeddedStarter } from './helpers/embedded.js';
import { startNbdkit, startQemuNbd, type RunningServer } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';

const haveQemu = requireBinaries('qemu-nbd', 'qemu-img', 'qemu-io');
const haveNbdkit = requireBinary('nbdkit');
const teardown = teardownAfterEach<RunningServer>();
const serve = embeddedStarter(teardown);
const M = 1 << 20;
const BITMAP = 'qemu:dirty-bitmap:b0';
const DEPTH = 'qemu:allocation-depth';

async function open(uri: string, options: Parameters<typeof connect>[1] = {}): Promise<NbdClient> {
  const c = (await connect(uri, options)) as NbdClient;
  teardown.clients.push(c);
  return c;
}

describe('the payload form, without a server', () => {
  const info = { canBlockStatusPayload: true, blockSizeMaximum: 32 * M } as ExportInfo;
  const conn = { extendedHeaders: true } as ConnectionInfo;
  const ids = new Map([[1, 'base:allocation'], [2, BITMAP]]);

  it('names map to wire ids; refusals in libnbd\'s order with its codes', () => {
    const all = strictChecks(true);
    expect(filterIds([BITMAP, 'base:allocation'], ids, info, conn, all)).toEqual([2, 1]);
    expect(filterIds([BITMAP], ids, info, { extendedHeaders: false } as ConnectionInfo, strictChecks(false)))
      .toMatchObject({ code: 'ENOTSUP', message: 'block-status-filter: server does not support extended headers' });
    expect(filterIds([BITMAP], ids, { ...info, canBlockStatusPayload: false }, conn, all)).toMatchObject({ code: 'EINVAL' });
    expect(filterIds([BITMAP], ids, { ...info, canBlockStatusPayload: false }, conn, strictChecks({ commands: false }))).toEqual([2]);
    expect(filterIds([BITMAP], new Map(), info, conn, all)).toMatchObject({ code: 'ENOTSUP' });
    expect(filterIds(['qemu:other'], ids, info, conn, all)).toMatchObject({ code: 'EINVAL', message: expect.stringContaining('qemu:other') });
    expect(filterIds([BITMAP, BITMAP], ids, { ...info, blockSizeMaximum: 12 }, conn, all)).toMatchObject({ code: 'ERANGE' });
  });

  it('an answer for a context the filter left out is EPROTO', () => {
    const answer = new Map([['base:allocation', [{ length: 512, flags: 0 }]], [BITMAP, [{ length: 512, flags: 0 }]]]);
    expect(checkFilteredReply(answer, ['base:allocation', BITMAP])).toBe(answer);
    expect(() => checkFilteredReply(answer, [BITMAP])).toThrow(expect.objectContaining({ code: 'EPROTO', message: expect.stringContaining('base:allocation') }));
  });

  it('the payload: 64-bit effect length, then 32-bit ids', () => {
    const b = Buffer.alloc(blockStatusFilterSize(2));
    expect(encodeBlockStatusFilter(b, 0, 2 ** 40 + 5, [7, 1])).toBe(16);
    expect(b.toString('hex')).toBe('0000010000000005' + '00000007' + '00000001');
    expect(decodeBlockStatusFilter(b)).toEqual({ length: 2 ** 40 + 5, ids: [7, 1] });
    expect(() => decodeBlockStatusFilter(b.subarray(0, 14))).toThrow(/8 \+ 4n/);
  });

  it('the server takes PAYLOAD_LEN on block status only with extended headers and the flag; payload 8 + 4n, n from 1 to the contexts', () => {
    const rules = {
      backend: { size: 4 * M }, size: 4 * M, style: ReplyStyle.Extended, transmissionFlags: FLAG_BLOCK_STATUS_PAYLOAD,
      writable: false, metaContexts: 2,
    } as unknown as RequestRules;
    const req = (length: number, r = rules) => checkRequest({ type: CMD_BLOCK_STATUS, flags: CMD_FLAG_PAYLOAD_LEN, offset: 0, length, cookieHi: 0, cookieLo: 1 }, r);
    expect(req(12)).toBeUndefined();
    expect(req(16)).toBeUndefined();
    for (const bad of [8, 13, 20]) expect(req(bad)).toMatchObject({ code: 'EINVAL' });
    expect(req(12, { ...rules, transmissionFlags: 0 })).toMatchObject({ code: 'EINVAL', message: expect.stringContaining('invalid flags') });
    expect(req(12, { ...rules, style: ReplyStyle.Structured })).toMatchObject({ code: 'EINVAL' });
  });
});

describe('blockStatusFilter against nbdserve (extended headers)', () => {
  it('advertised with extended headers and contexts only; the answer equals blockStatus; one header + 12 bytes sent', async () => {
    const s = await serve({ backend: ['memory', '8M'] });
    const c = await open(s.uri);
    await c.pwrite(Buffer.alloc(M, 1), 2 * M);
    expect(c.export.canBlockStatusPayload).toBe(true);
    const before = c.stats.bytesSent;
    const filtered = await c.blockStatusFilter(8 * M, 0, ['base:allocation']);
    expect(c.stats.bytesSent - before).toBe(32 + 12);
    expect(filtered).toEqual(await c.blockStatus(8 * M, 0));
    expect((await c.blockStatusFilter(8 * M, 0, ['base:allocation'], { reqOne: true })).get('base:allocation')).toEqual([{ length: 2 * M, flags: 3 }]);
    // Named twice (libnbd sends that; the server refuses), or none at all: the server's EINVAL, connection fine.
    await expect(c.blockStatusFilter(M, 0, ['base:allocation', 'base:allocation'])).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(c.blockStatusFilter(M, 0, [])).rejects.toMatchObject({ code: 'EINVAL' });
    // Not negotiated: refused here, nothing sent.
    const sent = c.stats.bytesSent;
    await expect(c.blockStatusFilter(M, 0, ['qemu:dirty-bitmap:x'])).rejects.toMatchObject({ code: 'EINVAL' });
    expect(c.stats.bytesSent).toBe(sent);
    // Past the end, strict bounds off: the server checks the effect length, not the payload's.
    const loose = await open(s.uri, { strict: { bounds: false } });
    await expect(loose.blockStatusFilter(M, 8 * M - 4096, ['base:allocation'])).rejects.toMatchObject({ code: 'EINVAL', serverMessage: expect.stringContaining('beyond the end') });
    expect(loose.state).toBe('ready');

    const compact = await open(s.uri, { requestExtendedHeaders: false });
    expect(compact.export.canBlockStatusPayload).toBe(false);
    const noContexts = await open(s.uri, { metaContexts: [] });
    expect(noContexts.export.canBlockStatusPayload).toBe(false);
    for (const [client, code] of [[compact, 'ENOTSUP'], [noContexts, 'EINVAL']] as const) {
      const n = client.stats.bytesSent;
      await expect(client.blockStatusFilter(M, 0, ['base:allocation'])).rejects.toMatchObject({ code });
      expect(client.stats.bytesSent).toBe(n);
    }
  });

  it('NBD_OPT_INFO reports the flag as GO will: only once extended headers and a context are set for that export', async () => {
    const s = await serve({ backend: ['memory', '1M'] });
    const c = await open(s.uri, { optMode: true, requestExtendedHeaders: false, requestStructuredReplies: false });
    expect((await c.optInfo()).canBlockStatusPayload).toBe(false);
    expect(await c.optExtendedHeaders()).toBe(true);
    expect((await c.optInfo()).canBlockStatusPayload).toBe(false);
    expect(await c.optSetMetaContext(['base:allocation'])).toEqual(['base:allocation']);
    expect((await c.optInfo()).canBlockStatusPayload).toBe(true);
    await c.optGo();
    expect(c.export.canBlockStatusPayload).toBe(true);
    expect((await c.blockStatusFilter(4096, 0, ['base:allocation'])).get('base:allocation')).toEqual([{ length: 4096, flags: 3 }]);
  });

  it('raw requests: unknown and repeated ids, a payload of the wrong size, the effect length past the end: EINVAL, and the next request is served', async () => {
    const s = await serve({ backend: ['memory', '1M'] });
    const raw = await RawNbd.connect(s.socket);
    teardown.push(() => raw.destroy());
    const { flags } = await raw.negotiate({ extended: true, meta: true });
    expect(flags & FLAG_BLOCK_STATUS_PAYLOAD).not.toBe(0);
    const payload = (length: number, ids: number[]): Buffer => {
      const b = Buffer.alloc(blockStatusFilterSize(ids.length));
      encodeBlockStatusFilter(b, 0, length, ids);
      return b;
    };
    const reply = async (): Promise<{ type: number; cookie: number; payload: Buffer }> => {
      const h = await raw.read(EXTENDED_REPLY_SIZE);
      const n = Number(h.readBigUInt64BE(24));
      return { type: h.readUInt16BE(6), cookie: Number(h.readBigUInt64BE(8)), payload: n ? await raw.read(n) : Buffer.alloc(0) };
    };
    const cases: Array<[number, Buffer]> = [
      [1, payload(4096, [2])], [2, payload(4096, [1, 1])], [3, Buffer.concat([payload(4096, [1]), Buffer.alloc(2)])],
      [4, payload(4096, [])], [5, payload(0, [1])], [6, payload(M, [1])],
    ];
    for (const [cookie, p] of cases) {
      raw.sendRequest(CMD_BLOCK_STATUS, CMD_FLAG_PAYLOAD_LEN, cookie, cookie === 6 ? 4096 : 0, p.length, p);
      const r = await reply();
      expect([r.cookie, r.type, r.payload.readUInt32BE(0)]).toEqual([cookie, REPLY_TYPE_ERROR, NBD_EINVAL]);
    }
    raw.sendRequest(CMD_BLOCK_STATUS, CMD_FLAG_PAYLOAD_LEN, 7, 0, 12, payload(M, [1]));
    const ok = await reply();
    expect([ok.cookie, ok.type, ok.payload.readUInt32BE(0), ok.payload.readUInt32BE(4)]).toEqual([7, REPLY_TYPE_BLOCK_STATUS_EXT, 1, 1]);
    expect(Number(ok.payload.readBigUInt64BE(8))).toBe(M);
  });
});

describe.skipIf(!haveQemu)('blockStatusFilter: nbdserve in front of qemu-nbd (three contexts)', () => {
  it('the reply holds only the contexts asked for, each as blockStatus reports it', async () => {
    const dir = teardown.tempDir('bs-filter-');
    const img = join(dir, 'disk.qcow2');
    const run = (cmd: string, args: string[]): void => {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    };
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '16M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x55 1M 2M', img]);
    run('qemu-img', ['bitmap', '--add', img, 'b0']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x66 8M 1M', img]);
    const up = await startQemuNbd(['-r', '-e', '4', '-f', 'qcow2', '-B', 'b0', '-A', img], { dir });
    teardown.servers.push(up);
    const front = await serve({ backend: ['nbd', up.uri] });
    const c = await open(front.uri, { metaContexts: ['base:allocation', BITMAP, DEPTH] });
    expect([...c.connection.metaContexts].sort()).toEqual(['base:allocation', BITMAP, DEPTH].sort());
    expect(c.export.canBlockStatusPayload).toBe(true);
    const all = await c.blockStatus(16 * M, 0);
    expect([...all.keys()].sort()).toEqual(['base:allocation', BITMAP, DEPTH].sort());
    const one = await c.blockStatusFilter(16 * M, 0, [BITMAP]);
    expect([...one.keys()]).toEqual([BITMAP]);
    expect(one.get(BITMAP)).toEqual(all.get(BITMAP));
    // The bitmap: what was written after it began, 1 MiB at 8 MiB.
    expect(one.get(BITMAP)).toEqual([{ length: 8 * M, flags: 0 }, { length: M, flags: 1 }, { length: 7 * M, flags: 0 }]);
    const two = await c.blockStatusFilter(16 * M, 0, [DEPTH, 'base:allocation']);
    expect([...two.keys()].sort()).toEqual([DEPTH, 'base:allocation'].sort());
    expect(two.get(DEPTH)).toEqual(all.get(DEPTH));
    expect(two.get('base:allocation')).toEqual(all.get('base:allocation'));

    // qemu-nbd itself speaks no extended headers: libnbd's ENOTSUP, strict or not, nothing sent.
    const direct = await open(up.uri, { metaContexts: ['base:allocation', BITMAP], strict: false });
    expect(direct.export.canBlockStatusPayload).toBe(false);
    const n = direct.stats.bytesSent;
    await expect(direct.blockStatusFilter(M, 0, [BITMAP])).rejects.toMatchObject({ code: 'ENOTSUP' });
    expect(direct.stats.bytesSent).toBe(n);
  });
});

describe.skipIf(!haveNbdkit)('blockStatusFilter: nbdkit', () => {
  it('no extended headers, no payload form: ENOTSUP before anything is sent', async () => {
    const s = await startNbdkit(['memory', '1M']);
    teardown.servers.push(s);
    const c = await open(s.uri);
    expect(c.connection.extendedHeaders).toBe(false);
    expect(c.export.canBlockStatusPayload).toBe(false);
    const n = c.stats.bytesSent;
    await expect(c.blockStatusFilter(M, 0, ['base:allocation'])).rejects.toMatchObject({
      code: 'ENOTSUP', message: 'block-status-filter: server does not support extended headers',
    });
    expect(c.stats.bytesSent).toBe(n);
    expect(c.state).toBe('ready');
  });
});

/** A backend with three contexts of its own that records which ones each block status asks for. */
function contextsBackend(asked: string[][]): Backend {
  const names = ['base:allocation', 'test:a', 'test:b'];
  return {
    kind: 'contexts', size: 4 * M, writable: false, canTrim: false, canZero: false, canFastZero: false, canFlush: false,
    canCache: false, multiConn: true, sparse: false,
    read: (into: Buffer) => void into.fill(0), write: () => undefined, zero: () => undefined, trim: () => undefined,
    flush: () => undefined, cache: () => undefined, close: () => undefined,
    extents: (_offset: number, length: number) => [{ length, flags: 0 }],
    metaContexts: async (_name: string, queries: readonly string[]) => names.filter((n) => queries.length === 0 || queries.includes(n)),
    blockStatus: async (_offset: number, length: number, contexts: readonly string[]) => {
      asked.push([...contexts]);
      return new Map(names.map((n, i) => [n, [{ length, flags: i }]]));
    },
  };
}

describe('blockStatusFilter: what a backend with its own contexts is asked', () => {
  it('nbdserve asks its backend for the named contexts only; its nbd backend forwards the filter to an upstream that offers it', async () => {
    const asked: string[][] = [];
    const middle = await serve({ backend: contextsBackend(asked) });
    const all = ['base:allocation', 'test:a', 'test:b'];
    const direct = await open(middle.uri, { metaContexts: all });
    const b = await direct.blockStatusFilter(M, 0, ['test:b']);
    expect(asked.pop()).toEqual(['test:b']);
    // The backend answered for all three; the reply carries the one asked for.
    expect([...b.entries()]).toEqual([['test:b', [{ length: M, flags: 2 }]]]);

    const front = await serve({ backend: ['nbd', middle.uri] });
    const c = await open(front.uri, { metaContexts: all });
    expect(c.export.canBlockStatusPayload).toBe(true);
    expect([...(await c.blockStatusFilter(M, 0, ['test:a'])).keys()]).toEqual(['test:a']);
    expect(asked.pop()).toEqual(['test:a']);
    expect([...(await c.blockStatus(M, 0)).keys()].sort()).toEqual(all);
    expect(asked.pop()).toEqual(all);
  });
});
