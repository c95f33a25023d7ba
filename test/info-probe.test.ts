// probe against a scripted client: map walking (windows of at most 4 GiB,
// short replies asked again from where they stopped, extents clipped to the window), list
// failures that do not stop the other exports, and the OPT_INFO -> OPT_GO fallback.
import { describe, expect, it } from 'vitest';
import type { BlockStatusResult, ConnectionInfo, ExportInfo, ExportListing, Extent } from '../src/client/types.js';
import { NbdError } from '../src/protocol/errors.js';
import type { InfoClient, OpenOptions } from '../src/info/client-port.js';
import { mapRequestLimit, probeList, probeMap, probeShow, type ProbeContext } from '../src/info/probe.js';

function exportInfo(size: number, extra: Partial<ExportInfo> = {}): ExportInfo {
  return {
    exportName: '', size, exactSize: BigInt(size), transmissionFlags: 0, readOnly: false, canFlush: true, canFua: false, rotational: false,
    canTrim: true, canZero: true, canDf: true, canMultiConn: true, canResize: false, canCache: false,
    canFastZero: false, canBlockStatusPayload: false, blockSizeMinimum: 1, blockSizePreferred: 4096,
    blockSizeMaximum: 33554432, blockSizeFromServer: false, ...extra,
  };
}

/** A disk described as runs of [length, flags]; answers at most `perReply` extents per request. */
class FakeClient implements InfoClient {
  connection: ConnectionInfo = {
    protocol: 'newstyle-fixed', tls: false, structuredReplies: true, extendedHeaders: false, metaContexts: ['base:allocation'],
  };
  export: ExportInfo | undefined;
  negotiating = false;
  requests: Array<[number, number]> = [];
  closed = false;

  constructor(info: ExportInfo, private readonly runs: Array<[number, number]>, private readonly perReply = 2) {
    this.export = info;
  }

  optList(): Promise<ExportListing[]> { return Promise.reject(new Error('not in option mode')); }
  optInfo(_name: string): Promise<ExportInfo> { return Promise.reject(new Error('not in option mode')); }
  optGo(_name: string): Promise<ExportInfo> { return Promise.reject(new Error('not in option mode')); }
  optListMetaContext(): Promise<string[]> { return Promise.resolve([]); }
  pread(): Promise<void> { return Promise.resolve(); }

  async blockStatus(length: number, offset: number): Promise<BlockStatusResult> {
    this.requests.push([offset, length]);
    // The length field has 32 bits (no extended headers here).
    if (length >= 2 ** 32) throw new NbdError('EINVAL', 'request too long');
    const out: Extent[] = [];
    let pos = 0;
    for (const [len, flags] of this.runs) {
      const end = pos + len;
      if (end > offset && out.length < this.perReply) {
        // Deliberately describe the whole run, even past the requested range.
        out.push({ length: end - Math.max(pos, offset), flags });
      }
      pos = end;
    }
    await new Promise((r) => setImmediate(r));
    return new Map([['base:allocation', out]]);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

function contextFor(client: InfoClient, opens: OpenOptions[] = []): ProbeContext {
  return { open: async (o) => { opens.push(o); return client; }, exportName: '', content: false };
}

describe('probeMap', () => {
  it('walks in windows of 4 GiB at most, re-asks after short replies, clips to each window', async () => {
    const GiB = 2 ** 30;
    const runs: Array<[number, number]> = [[3 * GiB, 0], [2 * GiB, 3], [512, 0], [2 * GiB - 512, 3], [GiB, 0]];
    const size = runs.reduce((n, [len]) => n + len, 0);
    const client = new FakeClient(exportInfo(size, { blockSizeFromServer: true, blockSizeMaximum: 2 * 2 ** 20, blockSizeMinimum: 512 }), runs);
    const opens: OpenOptions[] = [];
    const facts = await probeMap(contextFor(client, opens), 'base:allocation');
    expect(opens).toEqual([{ optMode: false, metaContexts: ['base:allocation'] }]);
    expect(client.requests.every(([, len]) => len <= 2 ** 32 - 512)).toBe(true);
    expect(client.requests.length).toBeLessThan(10);
    expect(facts.extents.reduce((n, e) => n + e.length, 0)).toBe(size);
    // Merged back into the runs, whatever the window boundaries were.
    const merged: Array<[number, number]> = [];
    for (const e of facts.extents) {
      const last = merged[merged.length - 1];
      if (last && last[1] === e.flags) last[0] += e.length;
      else merged.push([e.length, e.flags]);
    }
    expect(merged).toEqual(runs);
    expect(client.closed).toBe(true);
  });

  it('without a stated maximum, asks for up to 4 GiB minus the alignment at once', () => {
    expect(mapRequestLimit(exportInfo(2 ** 40), false)).toBe(2 ** 32 - 512);
    expect(mapRequestLimit(exportInfo(2 ** 40, { blockSizeFromServer: true, blockSizeMinimum: 4096, blockSizeMaximum: 0 }), false)).toBe(2 ** 32 - 4096);
    // A stated maximum payload does not shrink the windows (the reply's size is the server's).
    expect(mapRequestLimit(exportInfo(2 ** 40, { blockSizeFromServer: true, blockSizeMaximum: 1 << 20 }), false)).toBe(2 ** 32 - 1);
    expect(mapRequestLimit(exportInfo(2 ** 40), true)).toBe(2 ** 40);
  });

  it('fails clearly on a missing context or an empty reply', async () => {
    const client = new FakeClient(exportInfo(4096), [[4096, 0]]);
    await expect(probeMap(contextFor(client), 'qemu:dirty-bitmap:x')).rejects.toThrow(
      '--map: server does not support metadata context "qemu:dirty-bitmap:x"',
    );
    const empty = new FakeClient(exportInfo(8192), [[4096, 0]]);
    await expect(probeMap(contextFor(empty), 'base:allocation')).rejects.toThrow('server did not return any extents');
  });
});

class OptionModeClient extends FakeClient {
  override negotiating = true;
  constructor(private readonly exports: Record<string, ExportInfo | undefined>, private readonly infoWorks = true) {
    super(exportInfo(0), []);
    this.export = undefined;
  }
  override optList(): Promise<ExportListing[]> {
    return Promise.resolve(Object.keys(this.exports).map((name) => ({ name, description: name === 'b' ? 'bee' : '' })));
  }
  override async optInfo(name: string): Promise<ExportInfo> {
    if (!this.infoWorks) throw new NbdError('ENOTSUP', 'NBD_OPT_INFO: unsupported');
    return this.lookup(name);
  }
  override async optGo(name: string): Promise<ExportInfo> {
    const info = this.lookup(name);
    this.negotiating = false;
    this.export = info;
    return info;
  }
  override optListMetaContext(): Promise<string[]> {
    return Promise.resolve(['base:allocation', 'qemu:allocation-depth']);
  }
  private lookup(name: string): ExportInfo {
    const info = this.exports[name];
    if (!info) throw new NbdError('ENOENT', `NBD_OPT_GO: server replied NBD_REP_ERR_UNKNOWN`);
    return info;
  }
}

describe('probeShow / probeList', () => {
  it('falls back from OPT_INFO to OPT_GO, names the export that failed', async () => {
    const client = new OptionModeClient({ '': exportInfo(1024, { canonicalName: 'disk' }) }, false);
    const ctx = { ...contextFor(client), uriParts: { transport: 'unix' as const, tls: false, socket: '/s' } };
    const facts = await probeShow(ctx);
    expect(facts.exports[0]).toMatchObject({ name: 'disk', size: 1024, uri: 'nbd+unix:///?socket=/s' });
    const missingClient = new OptionModeClient({});
    await expect(probeShow({ ...contextFor(missingClient), exportName: 'zz' })).rejects.toThrow(
      /ERR_UNKNOWN for export: zz \(to list all exports on the server, use --list\)/,
    );
  });

  it('--list keeps going past an export that fails, with per-export URIs and descriptions', async () => {
    const client = new OptionModeClient({ a: exportInfo(1), b: exportInfo(2, { description: 'own' }), gone: undefined });
    const ctx = { ...contextFor(client), uriParts: { transport: 'tcp' as const, tls: false, host: 'h', port: '1' } };
    const { facts, failures } = await probeList(ctx);
    expect(facts.exports.map((e) => [e.name, e.uri, e.description, e.contexts])).toEqual([
      ['a', 'nbd://h:1/a', undefined, ['base:allocation', 'qemu:allocation-depth']],
      ['b', 'nbd://h:1/b', 'bee', ['base:allocation', 'qemu:allocation-depth']],
    ]);
    expect(failures).toHaveLength(1);
    expect(String(failures[0]!.error)).toMatch(/for export: gone$/);
  });
});
