// Connections to the upstream server, wherever the parameters say it is: with retries, with
// the command= server started (and restarted after it died) on demand, and with the export
// and meta contexts chosen before NBD_OPT_GO.
import { connect, type ConnectOptions } from '../../../client/connect.js';
import type { NbdClient } from '../../../client/nbd-client.js';
import type { ConnectTarget } from '../../../client/transport.js';
import { parseNbdUri } from '../../../client/uri.js';
import { TOOL_URI_ALLOW_LIST, type UriAllowList } from '../../../client/uri-allow.js';
import { NbdError } from '../../../protocol/errors.js';
import { ActivatedServer } from './activated-server.js';
import type { UpstreamParams } from './params.js';

const RETRY_DELAY_MS = 1000;

/**
 * What uri= may ask for: libnbd's defaults, which nbdkit's nbd plugin keeps, so no local files
 * (tls-psk-file=, tls-certificates=). The tls-psk= and tls-certificates= parameters name them.
 */
const URI_PARAMETER_ALLOW_LIST: UriAllowList = {};

/** The parameter that takes what a URI key would have named. */
const FILE_PARAMETERS = { 'tls-psk-file': 'tls-psk', 'tls-certificates': 'tls-certificates' } as const;

/**
 * Refuses a uri= that cannot be parsed (EINVAL) or names local files (EPERM), at start-up
 * rather than at the first client, with a line that says which parameter to use instead.
 */
function checkUriParameter(uri: string): void {
  try {
    parseNbdUri(uri, URI_PARAMETER_ALLOW_LIST);
  } catch (err) {
    if (!(err instanceof NbdError) || err.code !== 'EPERM') throw err;
    const u = parseNbdUri(uri, TOOL_URI_ALLOW_LIST);
    const key = u.tlsPskFile !== undefined ? 'tls-psk-file' : 'tls-certificates';
    throw new NbdError('EPERM', `nbd: uri= must not name local files (${key}=), as with nbdkit's nbd plugin: `
      + `use the ${FILE_PARAMETERS[key]}= parameter instead`);
  }
}

export class Upstream {
  private server: ActivatedServer | undefined;
  private starting: Promise<ActivatedServer> | undefined;
  private closed = false;

  constructor(readonly params: UpstreamParams) {
    if (params.address.kind === 'uri') checkUriParameter(params.address.uri);
  }

  /** The export a client's name stands for upstream: its own with dynamic exports, else ours. */
  exportFor(clientExport: string): string | undefined {
    if (this.params.dynamicExport) return clientExport;
    return this.params.exportName;
  }

  private async target(): Promise<ConnectTarget> {
    const a = this.params.address;
    switch (a.kind) {
      case 'command': {
        if (!this.server?.alive) {
          this.starting ??= ActivatedServer.start(a.argv).finally(() => { this.starting = undefined; });
          const old = this.server;
          this.server = await this.starting;
          if (old && old !== this.server) void old.stop();
        }
        return { unixSocket: this.server.socketPath };
      }
      case 'tcp': return { host: a.host, port: a.port };
      case 'vsock': return { vsock: { cid: a.cid, port: a.port } };
      case 'unix': return { unixSocket: a.path };
      case 'fd': return { fd: a.fd };
      case 'uri': return a.uri;
    }
  }

  /** One connection, left in option mode when the upstream has one; retried as retry= says. */
  async connect(exportName: string | undefined): Promise<NbdClient> {
    const opts: ConnectOptions = { ...URI_PARAMETER_ALLOW_LIST, optMode: true, metaContexts: [] };
    if (exportName !== undefined) opts.exportName = exportName;
    if (this.params.tls) opts.tls = this.params.tls;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new NbdError('ESHUTDOWN', 'the server is shutting down');
      try {
        return await connect(await this.target(), opts);
      } catch (err) {
        // An fd is one connection: it cannot be tried again.
        if (attempt >= this.params.retry || this.params.address.kind === 'fd') throw err;
        await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      }
    }
  }

  /**
   * A connection in transmission on the export, with `contexts` selected ('all': every
   * context the upstream lists). An upstream without options (oldstyle) just opens.
   */
  async open(exportName: string | undefined, contexts: readonly string[] | 'all'): Promise<NbdClient> {
    const client = await this.connect(exportName);
    try {
      if (client.state === 'option-mode') {
        const wanted = contexts === 'all' ? await listContexts(client, exportName) : contexts;
        if (wanted.length > 0) await client.optSetMetaContext([...wanted], exportName);
        await client.optGo(exportName);
      }
      return client;
    } catch (err) {
      await client.close();
      throw err;
    }
  }

  /** Every meta context the upstream lists for the export. */
  async listMetaContexts(exportName: string | undefined): Promise<string[]> {
    const client = await this.connect(exportName);
    try {
      return client.state === 'option-mode' ? await listContexts(client, exportName) : [];
    } finally {
      await client.close();
    }
  }

  async listExports(): Promise<Array<{ name: string; description: string }>> {
    const client = await this.connect(undefined);
    try {
      if (client.state !== 'option-mode') return [{ name: '', description: '' }];
      return await client.optList();
    } finally {
      await client.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const server = this.server ?? (await this.starting?.catch(() => undefined));
    await server?.stop();
  }
}

/** LIST_META_CONTEXT with no query; a server without meta contexts has none. */
async function listContexts(client: NbdClient, exportName: string | undefined): Promise<string[]> {
  if (!client.connection.structuredReplies) return [];
  try {
    return await client.optListMetaContext([], exportName);
  } catch (err) {
    if (err instanceof NbdError && 'replyType' in err) return [];
    throw err;
  }
}
