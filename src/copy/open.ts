// Opens a SOURCE or DESTINATION spec as an Endpoint. Each kind is loaded lazily: a local
// copy never pays for the client library, a URI copy never loads the FFI for files.
import type { DestinationHints, Endpoint } from './endpoint.js';
import type { EndpointSpec } from './spec.js';
import { NullEndpoint } from './endpoints/null.js';
import { NbdError } from '../protocol/errors.js';
import type { RetryOptions } from '../client/reconnect.js';
import type { UriAllowList } from '../client/uri-allow.js';

/**
 * How to open a side. The allow-lists (libnbd's, as connect() takes them, with its defaults:
 * no local files) apply to an NBD URI side; paths, '-' and `[ CMD ]` are the caller's choice.
 */
export interface OpenOptions extends UriAllowList {
  /** Debug lines (-v). */
  log?: (line: string) => void;
  /** Source: meta contexts to ask an NBD server for besides base:allocation. */
  metaContexts?: readonly string[];
  /** Destination: nothing will be written (used to open NBD read-write or read-only). */
  readOnly?: boolean;
  /** NBD: reopen lost connections and send their unanswered requests again. */
  retry?: RetryOptions;
  /** `[ CMD ]`: where the server's stderr goes (default: ours). */
  serverStderr?: (text: string) => void;
}

export async function openSource(spec: EndpointSpec, options: OpenOptions = {}): Promise<Endpoint> {
  switch (spec.kind) {
    case 'stdio': return (await import('./endpoints/open-local.js')).openStdin();
    case 'null': throw new NbdError('EINVAL', 'null: can only be used as the destination');
    case 'file': return (await import('./endpoints/open-local.js')).openLocalSource(spec.path);
    case 'uri':
    case 'command': {
      const { openNbdEndpoint } = await import('./endpoints/nbd.js');
      return openNbdEndpoint(spec, { ...options, writable: false });
    }
  }
}

export async function openDestination(spec: EndpointSpec, hints: DestinationHints, options: OpenOptions = {}): Promise<Endpoint> {
  switch (spec.kind) {
    case 'stdio': return (await import('./endpoints/open-local.js')).openStdout();
    case 'null': return new NullEndpoint();
    case 'file': return (await import('./endpoints/open-local.js')).openLocalDestination(spec.path, hints);
    case 'uri':
    case 'command': {
      const { openNbdEndpoint } = await import('./endpoints/nbd.js');
      return openNbdEndpoint(spec, { ...options, writable: true });
    }
  }
}

/**
 * Refuses an NBD URI side that asks for what `allow` does not allow (one NbdError EPERM), so
 * that neither side is opened: no socket, no file read, no destination created. A URI that
 * does not parse is left to the opening, which names the side in its error.
 */
export async function checkUriSides(specs: readonly EndpointSpec[], allow: UriAllowList): Promise<void> {
  const uris = specs.flatMap((s) => s.kind === 'uri' ? [s.uri] : []);
  if (uris.length === 0) return;
  const { parseNbdUri } = await import('../client/uri.js');
  for (const uri of uris) {
    try {
      parseNbdUri(uri, allow);
    } catch (err) {
      // The allow-lists are checked after the whole URI has parsed: only EPERM is theirs.
      if (err instanceof NbdError && err.code === 'EPERM') throw err;
    }
  }
}
