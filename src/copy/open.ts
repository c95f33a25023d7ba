// Opens a SOURCE or DESTINATION spec as an Endpoint. Each kind is loaded lazily: a local
// copy never pays for the client library, a URI copy never loads the FFI for files.
import type { DestinationHints, Endpoint } from './endpoint.js';
import type { EndpointSpec } from './spec.js';
import { NullEndpoint } from './endpoints/null.js';
import { NbdError } from '../protocol/errors.js';
import type { RetryOptions } from '../client/reconnect.js';

export interface OpenOptions {
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
