// Adapts the client library to what probing needs (client-port.ts), and turns nbdinfo's target
// (a URI or "[ CMD ARGS ]") into an opener plus the facts the "uri:" line is built from.
// The client's modules themselves, not its index: that would also load what nbdinfo never uses
// (multi-conn, reconnection) at every start.
import { connect } from '../client/connect.js';
import type { NbdClient } from '../client/nbd-client.js';
import { parseNbdUri } from '../client/uri.js';
import { TOOL_URI_ALLOW_LIST } from '../client/uri-allow.js';
import type { ConnectTarget } from '../client/transport.js';
import type { ExportInfo } from '../client/types.js';
import { NbdError } from '../protocol/errors.js';
import type { InfoTarget } from './argv.js';
import type { InfoClient, Opener, OpenOptions } from './client-port.js';
import type { RunEnvironment } from './run.js';
import type { UriParts } from './uri-format.js';

/** A refusal of an option by the server (the client marks those with the reply type). */
function isOptionRefusal(err: unknown): boolean {
  return err instanceof NbdError && 'replyType' in err;
}

export function describeExport(name: string): string {
  return name === '' ? 'the default export' : `export: ${name}`;
}

class ClientAdapter implements InfoClient {
  constructor(private readonly client: NbdClient) {}

  get connection() {
    return this.client.connection;
  }

  get export(): ExportInfo | undefined {
    return this.client.state === 'ready' ? this.client.export : undefined;
  }

  get negotiating(): boolean {
    return this.client.state === 'option-mode';
  }

  optList() {
    return this.client.optList();
  }

  optInfo(exportName: string) {
    return this.client.optInfo(exportName);
  }

  async optGo(exportName: string): Promise<ExportInfo> {
    await this.client.optGo(exportName);
    return this.client.export;
  }

  optListMetaContext(exportName: string) {
    return this.client.optListMetaContext([], exportName);
  }

  pread(buffer: Uint8Array, offset: number) {
    return this.client.pread(buffer, offset);
  }

  blockStatus(length: number, offset: number) {
    return this.client.blockStatus(length, offset);
  }

  close() {
    return this.client.close();
  }
}

function uriPartsOf(uri: string): { parts: UriParts; exportName: string } {
  // As libnbd's nbdinfo: the URI on our command line may name a PSK file or certificates.
  const u = parseNbdUri(uri, TOOL_URI_ALLOW_LIST);
  const parts: UriParts = { transport: u.transport, tls: u.tls };
  if (u.host !== undefined) parts.host = u.host;
  if (u.port !== undefined) parts.port = String(u.port);
  if (u.socket !== undefined) parts.socket = u.socket;
  if (u.username !== undefined) parts.user = u.username;
  if (u.tlsCertificates !== undefined) parts.tlsCertificates = u.tlsCertificates;
  if (u.tlsPskFile !== undefined) parts.tlsPskFile = u.tlsPskFile;
  return { parts, exportName: u.exportName };
}

export function environmentFor(target: InfoTarget, stdoutIsTerminal: boolean): RunEnvironment {
  let connectTarget: ConnectTarget;
  let exportName = '';
  let uriParts: UriParts | undefined;
  if ('uri' in target) {
    // Parse up front: a bad URI is reported before anything is started.
    const parsed = uriPartsOf(target.uri);
    uriParts = parsed.parts;
    exportName = parsed.exportName;
    connectTarget = target.uri;
  } else {
    // libnbd runs "[ CMD ARGS ]" with systemd socket activation; so do we.
    connectTarget = { activation: target.command };
  }
  const open: Opener = async (options: OpenOptions) => {
    try {
      const client = await connect(connectTarget, {
        ...TOOL_URI_ALLOW_LIST,
        optMode: options.optMode,
        fullInfo: true,
        metaContexts: options.metaContexts ?? [],
      });
      return new ClientAdapter(client);
    } catch (err) {
      // Outside option mode the export is opened while connecting: say which one failed.
      if (isOptionRefusal(err)) {
        const e = err as NbdError;
        throw new NbdError(e.code, `${e.message} for ${describeExport(exportName)}`, { cause: err });
      }
      throw err;
    }
  };
  const env: RunEnvironment = { stdoutIsTerminal, open, exportName };
  if (uriParts) env.uriParts = uriParts;
  return env;
}
