// NBD endpoint: placeholder until the client library lands.
import type { Endpoint } from '../endpoint.js';
import type { EndpointSpec } from '../spec.js';
import { NbdError } from '../../protocol/errors.js';

export interface NbdOpenOptions {
  writable: boolean;
  log?: (line: string) => void;
}

export async function openNbdEndpoint(spec: EndpointSpec & { kind: 'uri' | 'command' }, _options: NbdOpenOptions): Promise<Endpoint> {
  throw new NbdError('ENOTSUP', `${spec.kind === 'uri' ? spec.uri : spec.argv.join(' ')}: NBD endpoints are not available yet`);
}
