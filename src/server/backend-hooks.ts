// What the handshake asks of backends that stand for another server (the nbd backend): exports
// opened per connection, their own export list and meta contexts. Plain backends take the
// server's defaults here, so negotiate.ts reads the same for both.
import { CONTEXT_BASE_ALLOCATION, REP_ERR_UNKNOWN } from '../protocol/constants.js';
import type { Backend, ExportListing } from './backends/types.js';
import type { ResolvedExport, SessionConfig } from './options.js';

/** The export a name selects, or undefined; a dynamic default export takes every name. */
export function lookupExport(config: SessionConfig, name: string): ResolvedExport | undefined {
  if (name === '') return config.defaultExport;
  const exp = config.exports.get(name);
  if (exp) return exp;
  const d = config.defaultExport;
  return d.backend.dynamicExports ? { ...d, name } : undefined;
}

/** NBD_OPT_LIST: the backend's list when it has one, else the exports we were given. */
export async function listExports(config: SessionConfig): Promise<ExportListing[]> {
  const list = config.defaultExport.backend.listExports;
  if (list) return list.call(config.defaultExport.backend);
  return [...config.exports.values()].map((e) => ({ name: e.name, description: e.description ?? '' }));
}

/**
 * The meta contexts an export serves that match `queries` ([] = all). The server's own
 * base:allocation unless the backend names its contexts itself.
 */
export async function matchMetaContexts(exp: ResolvedExport, queries: readonly string[], selecting: boolean): Promise<string[]> {
  const own = exp.backend.metaContexts;
  // The spec: SET with no queries selects nothing; LIST with none lists everything.
  if (selecting && queries.length === 0) return [];
  if (own) return own.call(exp.backend, exp.name, queries);
  const matches = queries.length === 0 || queries.some((q) => q === CONTEXT_BASE_ALLOCATION || (!selecting && q === 'base:'));
  return matches ? [CONTEXT_BASE_ALLOCATION] : [];
}

/**
 * The backend one connection uses for `exp`: opened for it when the backend opens per
 * connection (the caller then closes it), the shared one otherwise.
 */
export async function openExport(exp: ResolvedExport, metaContexts: readonly string[]): Promise<ResolvedExport> {
  const open = exp.backend.open;
  if (!open) return exp;
  return { ...exp, backend: await open.call(exp.backend, exp.name, metaContexts) };
}

/** Closes what openExport opened; errors are the backend's to report. */
export async function closeOpened(opened: ResolvedExport, template: Backend): Promise<void> {
  if (opened.backend !== template) await Promise.resolve(opened.backend.close()).catch(() => undefined);
}

/** The option reply for a backend that could not open: the upstream's own when it sent one. */
export function openFailureReply(err: unknown): number {
  const type = (err as { replyType?: unknown }).replyType;
  return typeof type === 'number' ? type : REP_ERR_UNKNOWN;
}

export function descriptionOf(exp: ResolvedExport): string | undefined {
  return exp.description ?? exp.backend.description;
}
