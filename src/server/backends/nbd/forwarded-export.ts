// One client's view of an upstream export: every command becomes the same command on an
// upstream connection (our client library picks the cookie, so several clients can share one
// connection), and what the upstream answers, data, extents or errno, goes back unchanged.
import type { NbdClient } from '../../../client/nbd-client.js';
import { CONTEXT_BASE_ALLOCATION, FLAG_CAN_MULTI_CONN, FLAG_SEND_RESIZE } from '../../../protocol/constants.js';
import { NbdError } from '../../../protocol/errors.js';
import type { Backend, BlockSizeLimits, Extent, ZeroOptions } from '../types.js';

export interface ForwardedExportOptions {
  /** Every client reaches this one connection: they are consistent with each other. */
  shared: boolean;
  /** Close the upstream connection with this view (it is this client's alone). */
  ownsConnection: boolean;
  /** Called when a command finds the upstream gone. */
  onLost: (why: string) => void;
}

export class ForwardedExport implements Backend {
  readonly kind = 'nbd';
  readonly size: number;
  readonly writable: boolean;
  readonly canTrim: boolean;
  readonly canZero: boolean;
  readonly canFastZero: boolean;
  readonly canFlush: boolean;
  readonly canCache: boolean;
  readonly multiConn: boolean;
  /** Reads go out as the upstream's data in one chunk: no extents asked for per read. */
  readonly sparse = false;
  readonly blockSize: BlockSizeLimits | null;
  readonly transmissionFlags: number;
  readonly description: string | undefined;

  constructor(private readonly client: NbdClient, private readonly opts: ForwardedExportOptions) {
    const info = client.export;
    this.size = info.size;
    this.writable = !info.readOnly;
    this.canTrim = info.canTrim;
    this.canZero = info.canZero;
    this.canFastZero = info.canFastZero;
    this.canFlush = info.canFlush;
    this.canCache = info.canCache;
    // A shared connection is one view of the data for every client; otherwise each client has
    // its own connection, consistent with the others only when the upstream says so.
    this.multiConn = opts.shared || info.canMultiConn;
    let flags = info.transmissionFlags & ~FLAG_SEND_RESIZE;
    flags = this.multiConn ? flags | FLAG_CAN_MULTI_CONN : flags & ~FLAG_CAN_MULTI_CONN;
    this.transmissionFlags = flags;
    this.blockSize = info.blockSizeFromServer
      ? { minimum: info.blockSizeMinimum, preferred: info.blockSizePreferred, maximum: info.blockSizeMaximum }
      : null;
    this.description = info.description;
  }

  /** An upstream that went away fails what was in flight with ESHUTDOWN; protocol errors pass through. */
  private upstreamError = (err: unknown): never => {
    const state = this.client.state;
    if (state === 'dead' || state === 'closed') {
      const why = err instanceof Error ? err.message : String(err);
      this.opts.onLost(why);
      throw new NbdError('ESHUTDOWN', `upstream server: ${why}`, { cause: err });
    }
    throw err;
  };

  read(into: Buffer, offset: number): Promise<void> {
    return this.client.pread(into, offset).catch(this.upstreamError);
  }

  write(data: Buffer, offset: number, fua: boolean): Promise<void> {
    return this.client.pwrite(data, offset, fua ? { fua } : undefined).catch(this.upstreamError);
  }

  zero(offset: number, length: number, options: ZeroOptions): Promise<void> {
    return this.client.zero(length, offset, { fua: options.fua, noHole: options.noHole, fastZero: options.fast }).catch(this.upstreamError);
  }

  trim(offset: number, length: number, fua: boolean): Promise<void> {
    return this.client.trim(length, offset, fua ? { fua } : undefined).catch(this.upstreamError);
  }

  flush(): Promise<void> {
    return this.client.flush().catch(this.upstreamError);
  }

  /** CACHE is advice: an upstream without it has nothing to prefetch, which is still success. */
  async cache(offset: number, length: number): Promise<void> {
    if (!this.canCache) return;
    await this.client.cache(length, offset).catch(this.upstreamError);
  }

  /**
   * Extents of `contexts`: asked of the upstream for those alone (a filtered block status)
   * when they are fewer than the upstream connection has and it offers the payload form;
   * otherwise for all, and the server drops the others.
   */
  blockStatus(offset: number, length: number, contexts: readonly string[], reqOne: boolean): Promise<Map<string, Extent[]>> {
    const c = this.client;
    const flags = reqOne ? { reqOne } : undefined;
    const negotiated = c.connection.metaContexts;
    const wanted = contexts.filter((name) => negotiated.includes(name));
    const filter = c.export.canBlockStatusPayload && wanted.length > 0 && wanted.length < negotiated.length;
    return (filter ? c.blockStatusFilter(length, offset, wanted, flags) : c.blockStatus(length, offset, flags)).catch(this.upstreamError);
  }

  /** base:allocation alone (the server asks this way only without blockStatus); all data without it. */
  async extents(offset: number, length: number): Promise<Extent[]> {
    if (!this.client.connection.metaContexts.includes(CONTEXT_BASE_ALLOCATION)) return [{ length, flags: 0 }];
    const got = await this.blockStatus(offset, length, [CONTEXT_BASE_ALLOCATION], false);
    return got.get(CONTEXT_BASE_ALLOCATION) ?? [{ length, flags: 0 }];
  }

  async close(): Promise<void> {
    if (this.opts.ownsConnection) await this.client.close();
  }
}
