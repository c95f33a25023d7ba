// The nbd backend: forwards every client to another NBD server (nbdkit-nbd-plugin's job). Each
// client gets its own upstream connection, opened for the export and meta contexts it chose,
// or, when shared, all clients' commands go over one connection opened at start-up.
import type { NbdClient } from '../../../client/nbd-client.js';
import { NbdError } from '../../../protocol/errors.js';
import type { Backend, ExportListing } from '../types.js';
import { ForwardedExport } from './forwarded-export.js';
import { parseUpstreamParams } from './params.js';
import { Upstream } from './upstream.js';

export interface NbdBackendOptions {
  /** One line about the upstream going away (the CLI prints it on stderr). */
  warn?: (message: string) => void;
}

/** Matches a LIST_META_CONTEXT / SET_META_CONTEXT query against a context name, as servers do. */
function queryMatches(query: string, name: string): boolean {
  return query === name || (query.endsWith(':') && name.startsWith(query));
}

export class NbdBackend implements Backend {
  readonly kind = 'nbd';
  /** The server asks open() before it needs any of these: the real values are per connection. */
  readonly size = 0;
  readonly writable = true;
  readonly canTrim = false;
  readonly canZero = false;
  readonly canFastZero = false;
  readonly canFlush = false;
  readonly canCache = false;
  readonly multiConn = false;
  readonly sparse = false;
  readonly dynamicExports: boolean;
  private sharedClient: NbdClient | undefined;
  private reconnecting: Promise<NbdClient> | undefined;
  /** Meta contexts per upstream export, learnt once (a server's set does not change while it runs). */
  private readonly contexts = new Map<string, Promise<string[]>>();
  /** An outage was reported and no upstream connection has opened since: say it once. */
  private outageReported = false;

  private constructor(private readonly upstream: Upstream, private readonly options: NbdBackendOptions) {
    this.dynamicExports = upstream.params.dynamicExport;
    if (upstream.params.dynamicExport) this.listExports = () => this.upstream.listExports();
  }

  static async create(args: readonly string[], options: NbdBackendOptions = {}): Promise<NbdBackend> {
    const backend = new NbdBackend(new Upstream(parseUpstreamParams(args)), options);
    // Shared: the one connection is opened now (retry= gives a late server time to start).
    if (backend.upstream.params.shared) {
      try {
        backend.sharedClient = await backend.upstream.open(backend.upstream.params.exportName, 'all');
      } catch (err) {
        await backend.upstream.close();
        throw new NbdError((err as NbdError).code ?? 'EIO', `nbd: cannot connect to the upstream server: ${(err as Error).message}`, { cause: err });
      }
    }
    return backend;
  }

  listExports?: () => Promise<ExportListing[]>;

  /** One line per outage, however many clients' connections it cut. */
  private onLost(why: string): void {
    if (this.outageReported) return;
    this.outageReported = true;
    this.options.warn?.(`nbd: the upstream server went away: ${why}`);
  }

  private opened(client: NbdClient): NbdClient {
    this.outageReported = false;
    return client;
  }

  /** The shared connection, opened again if it died (for clients that come later). */
  private async shared(): Promise<NbdClient> {
    const c = this.sharedClient;
    if (c && c.state === 'ready') return c;
    this.reconnecting ??= this.upstream.open(this.upstream.params.exportName, 'all').then((fresh) => {
      this.sharedClient = fresh;
      return this.opened(fresh);
    }).finally(() => { this.reconnecting = undefined; });
    return this.reconnecting;
  }

  async open(exportName: string, metaContexts: readonly string[]): Promise<Backend> {
    const shared = this.upstream.params.shared;
    const client = shared ? await this.shared() : this.opened(await this.upstream.open(this.upstream.exportFor(exportName), metaContexts));
    return new ForwardedExport(client, { shared, ownsConnection: !shared, onLost: (why) => this.onLost(why) });
  }

  async metaContexts(exportName: string, queries: readonly string[]): Promise<string[]> {
    let all: string[];
    if (this.upstream.params.shared) {
      all = (await this.shared()).connection.metaContexts;
    } else {
      const upstreamName = this.upstream.exportFor(exportName) ?? '';
      let known = this.contexts.get(upstreamName);
      if (!known) {
        known = this.upstream.listMetaContexts(this.upstream.exportFor(exportName));
        this.contexts.set(upstreamName, known);
        known.catch(() => this.contexts.delete(upstreamName));
      }
      all = await known;
    }
    return queries.length === 0 ? [...all] : all.filter((name) => queries.some((q) => queryMatches(q, name)));
  }

  // Never called: the server opens a connection's own view first.
  read(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  write(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  zero(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  trim(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  flush(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  cache(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }
  extents(): never { throw new NbdError('EIO', 'nbd: no upstream connection'); }

  async close(): Promise<void> {
    await this.sharedClient?.close();
    await this.upstream.close();
  }
}
