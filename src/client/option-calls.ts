// The option-mode calls that ask the server something and leave option mode open (libnbd's
// opt_list, opt_info, opt_*_meta_context, ...). NbdClient inherits them and runs each call.
import type { ClientTlsOptions } from '../tls/types.js';
import type { ClientOptions } from './client-options.js';
import type { OptionPhase } from './option-phase.js';
import type { ExportInfo, ExportListing } from './types.js';

/** The option-mode queries of an {@link NbdClient} connected with `optMode: true`. */
export abstract class OptionCalls {
  /** @internal */
  protected abstract readonly opts: ClientOptions;
  /**
   * Runs one option-mode call; a refused option leaves the connection usable.
   * @internal
   */
  protected abstract option<T>(what: string, call: (phase: OptionPhase) => Promise<T>): Promise<T>;

  /** NBD_OPT_LIST: the server's exports. */
  optList(): Promise<ExportListing[]> {
    return this.option('optList', (p) => p.list());
  }
  /** NBD_OPT_INFO for `exportName` (default: the connect option's). */
  optInfo(exportName = this.opts.exportName ?? ''): Promise<ExportInfo> {
    return this.option('optInfo', (p) => p.info(exportName));
  }
  /** NBD_OPT_LIST_META_CONTEXT: the contexts matching `queries` (all when empty). */
  optListMetaContext(queries: string[] = [], exportName = this.opts.exportName ?? ''): Promise<string[]> {
    return this.option('optListMetaContext', (p) => p.listMetaContext(queries, exportName));
  }
  /** NBD_OPT_SET_META_CONTEXT: selects the contexts block status reports. */
  optSetMetaContext(queries: string[], exportName = this.opts.exportName ?? ''): Promise<string[]> {
    return this.option('optSetMetaContext', (p) => p.setMetaContext(queries, exportName));
  }
  /** NBD_OPT_STRUCTURED_REPLY; true when the server agreed. */
  optStructuredReply(): Promise<boolean> {
    return this.option('optStructuredReply', (p) => p.structuredReply());
  }
  /** NBD_OPT_EXTENDED_HEADERS; true when the server agreed. */
  optExtendedHeaders(): Promise<boolean> {
    return this.option('optExtendedHeaders', (p) => p.extendedHeaders());
  }
  /** NBD_OPT_STARTTLS, then the TLS handshake; true when the connection is now encrypted. */
  optStartTls(options: ClientTlsOptions = this.opts.tls ?? { mode: 'require' }): Promise<boolean> {
    return this.option('optStartTls', (p) => p.startTls(options));
  }
}
