// Gathers the facts nbdinfo prints. Probing and printing never mix: everything here returns
// typed facts (or throws NbdError) and leaves formatting to the renderers.
import type { ExportInfo, Extent } from '../client/types.js';
import { NbdError } from '../protocol/errors.js';
import type { InfoClient, Opener } from './client-port.js';
import { CONTENT_PROBE_BYTES, describeContent } from './content.js';
import type { ConnectionFacts, ExportFacts, MapFacts, ShowFacts } from './facts.js';
import { formatExportUri, type UriParts } from './uri-format.js';

export interface ProbeContext {
  open: Opener;
  /** The export named by the URI ("" for a subprocess). */
  exportName: string;
  /** Absent for a subprocess: there is no URI worth printing. */
  uriParts?: UriParts;
  content: boolean;
}

/** An export that could not be probed in --list mode; the others are still printed. */
export interface ExportFailure {
  exportName: string;
  error: unknown;
}

function connectionFacts(client: InfoClient): ConnectionFacts {
  const c = client.connection;
  return { protocol: c.protocol, tls: c.tls, structured: c.structuredReplies };
}

function exportLabel(name: string): string {
  return name === '' ? 'the default export' : `export: ${name}`;
}

/** Adds which export failed to the error, as libnbd's "... for export: NAME". */
function forExport(err: unknown, name: string, hint = ''): NbdError {
  const why = err instanceof Error ? err.message : String(err);
  const code = err instanceof NbdError ? err.code : 'EIO';
  // The hint only helps when the export does not exist.
  const unknown = code === 'ENOENT' || /ERR_UNKNOWN/.test(why);
  return new NbdError(code, `${why} for ${exportLabel(name)}${unknown ? hint : ''}`, { cause: err });
}

/** libnbd prints this suggestion on a line of its own; we keep the one-line rule. */
const LIST_HINT = ' (to list all exports on the server, use --list)';

/** Info about one export: OPT_INFO when the server can, else all the way with OPT_GO. */
async function learnExport(client: InfoClient, name: string, hint: string): Promise<ExportInfo> {
  if (!client.negotiating) {
    if (client.export === undefined) throw new NbdError('EINVAL', 'connection has no export');
    return client.export;
  }
  try {
    return await client.optInfo(name);
  } catch {
    // Servers without NBD_OPT_INFO (or refusing it) may still open the export with GO.
    try {
      return await client.optGo(name);
    } catch (goErr) {
      throw forExport(goErr, name, hint);
    }
  }
}

async function listContexts(client: InfoClient, name: string): Promise<string[] | undefined> {
  if (!client.negotiating || !client.connection.structuredReplies) return undefined;
  try {
    return await client.optListMetaContext(name);
  } catch {
    return undefined;
  }
}

async function readContent(client: InfoClient, name: string, size: number): Promise<string | undefined> {
  // Reading needs the transmission phase; after this the connection cannot list or ask again.
  if (client.negotiating) await client.optGo(name);
  const buffer = new Uint8Array(Math.min(size, CONTENT_PROBE_BYTES));
  if (buffer.length > 0) {
    try {
      await client.pread(buffer, 0);
    } catch {
      return undefined;
    }
  }
  return describeContent(buffer);
}

interface ExportProbe {
  requestedName: string;
  /** From --list: the listing's description wins over the export's own (libnbd does so). */
  listedDescription?: string;
  content: boolean;
}

async function probeExport(client: InfoClient, ctx: ProbeContext, p: ExportProbe): Promise<ExportFacts> {
  const info = await learnExport(client, p.requestedName, p.listedDescription === undefined ? LIST_HINT : '');
  const contexts = await listContexts(client, p.requestedName);
  const content = p.content ? await readContent(client, p.requestedName, info.size) : undefined;
  const description = p.listedDescription ?? info.description;
  const facts: ExportFacts = {
    name: info.canonicalName ?? p.requestedName,
    size: info.size,
    exactSize: info.exactSize,
    isRotational: info.rotational,
    isReadOnly: info.readOnly,
    canCache: info.canCache,
    canDf: info.canDf,
    canFastZero: info.canFastZero,
    canFlush: info.canFlush,
    canFua: info.canFua,
    canMultiConn: info.canMultiConn,
    canTrim: info.canTrim,
    canZero: info.canZero,
  };
  if (description) facts.description = description;
  if (content !== undefined) facts.content = content;
  if (ctx.uriParts) {
    const tls = ctx.uriParts.tls || client.connection.tls;
    facts.uri = formatExportUri({ ...ctx.uriParts, tls }, p.requestedName);
  }
  if (contexts) facts.contexts = contexts;
  if (info.blockSizeFromServer) {
    facts.blockSizes = {
      minimum: info.blockSizeMinimum,
      preferred: info.blockSizePreferred,
      maximum: info.blockSizeMaximum,
    };
  }
  return facts;
}

/** Default mode: the connection and the one export the URI names. */
export async function probeShow(ctx: ProbeContext): Promise<ShowFacts> {
  const client = await ctx.open({ optMode: true });
  try {
    const exp = await probeExport(client, ctx, { requestedName: ctx.exportName, content: ctx.content });
    return { connection: connectionFacts(client), exports: [exp] };
  } finally {
    await client.close();
  }
}

/** --list: every export the server lists; those that fail are reported, not fatal to the rest. */
export async function probeList(ctx: ProbeContext): Promise<{ facts: ShowFacts; failures: ExportFailure[] }> {
  const client = await ctx.open({ optMode: true });
  try {
    if (!client.negotiating) {
      throw new NbdError('ENOTSUP', `--list: the server cannot list exports (${client.connection.protocol} protocol)`);
    }
    const listing = await client.optList();
    const facts: ShowFacts = { connection: connectionFacts(client), exports: [] };
    const failures: ExportFailure[] = [];
    for (const item of listing) {
      const probe: ExportProbe = { requestedName: item.name, listedDescription: item.description, content: ctx.content };
      try {
        if (ctx.content) {
          // Reading moves a connection out of negotiation, so each export gets its own.
          const own = await ctx.open({ optMode: true });
          try {
            facts.exports.push(await probeExport(own, ctx, probe));
          } finally {
            await own.close();
          }
        } else {
          facts.exports.push(await probeExport(client, ctx, probe));
        }
      } catch (error) {
        failures.push({ exportName: item.name, error });
      }
    }
    return { facts, failures };
  } finally {
    await client.close();
  }
}

/** --size */
export async function probeSize(ctx: ProbeContext): Promise<bigint> {
  const client = await ctx.open({ optMode: false });
  try {
    return requireExport(client).exactSize;
  } finally {
    await client.close();
  }
}

function requireExport(client: InfoClient): ExportInfo {
  if (client.export === undefined) throw new NbdError('EINVAL', 'connection has no export');
  return client.export;
}

/** --can / --is: asks `question` about the ready connection. */
export async function probeCan(
  ctx: ProbeContext,
  question: (client: InfoClient, info: ExportInfo) => boolean,
): Promise<boolean> {
  const client = await ctx.open({ optMode: false });
  try {
    return question(client, requireExport(client));
  } finally {
    await client.close();
  }
}

/** Requests in flight at once while walking a map; windows are independent. */
const MAP_WINDOWS_IN_FLIGHT = 4;

/**
 * The longest block status request: what fits in 32 bits (the whole disk with extended
 * headers), aligned to the minimum block size. A server's maximum payload does not bound it:
 * the reply's size is the server's choice, and the protocol lets clients ask past that maximum
 * (libnbd does too). Windows of the maximum made a 1 TiB disk behind a 64 KiB maximum take
 * 16 million requests.
 */
export function mapRequestLimit(info: ExportInfo, extendedHeaders: boolean): number {
  const align = info.blockSizeFromServer && info.blockSizeMinimum > 0 ? info.blockSizeMinimum : 512;
  if (extendedHeaders) return Math.max(info.size, align);
  return 2 ** 32 - align;
}

/** Walks [start, end) of one context, asking again from wherever a short reply stopped. */
async function walkWindow(client: InfoClient, context: string, start: number, end: number): Promise<Extent[]> {
  const out: Extent[] = [];
  let offset = start;
  while (offset < end) {
    const reply = await client.blockStatus(end - offset, offset);
    const extents = reply.get(context);
    if (!extents || extents.length === 0) throw new NbdError('EPROTO', '--map: server did not return any extents');
    for (const e of extents) {
      if (offset >= end) break;
      if (e.length <= 0) throw new NbdError('EPROTO', '--map: server returned an empty extent');
      // A server may describe more than was asked; keep only this window.
      const length = Math.min(e.length, end - offset);
      out.push({ length, flags: e.flags });
      offset += length;
    }
  }
  return out;
}

/** --map[=CONTEXT]: the whole export, in requests the server accepts. */
export async function probeMap(ctx: ProbeContext, context: string): Promise<MapFacts> {
  const client = await ctx.open({ optMode: false, metaContexts: [context] });
  try {
    if (!client.connection.metaContexts.includes(context)) {
      throw new NbdError('ENOTSUP', `--map: server does not support metadata context "${context}"`);
    }
    const info = requireExport(client);
    const size = info.size;
    const limit = mapRequestLimit(info, client.connection.extendedHeaders);
    const windows: Array<[number, number]> = [];
    for (let start = 0; start < size; start += limit) windows.push([start, Math.min(size, start + limit)]);
    const results: Extent[][] = new Array(windows.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < windows.length) {
        const i = next++;
        const [start, end] = windows[i]!;
        results[i] = await walkWindow(client, context, start, end);
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAP_WINDOWS_IN_FLIGHT, windows.length) }, worker));
    return { context, size, extents: results.flat() };
  } finally {
    await client.close();
  }
}
