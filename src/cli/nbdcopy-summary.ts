// The lines `nbdcopy -v` starts with, in libnbd's words and format: scripts grep them
// (`nbdcopy: src: nbd_ops "nbdkit"`, `... size=1048576 (1M), preferred block size=4096`).
import type { Endpoint } from '../copy/endpoint.js';
import type { EndpointSpec } from '../copy/spec.js';
import { humanSize } from '../info/human-size.js';

/** libnbd's size for an endpoint that has none of its own: null: is "as big as anything". */
const NULL_SIZE = 2n ** 63n - 1n;
/** libnbd keeps a stream's unknown size as -1, shown unsigned in brackets. */
const UNKNOWN_SIZE = -1n;

/** libnbd's name for the kind of endpoint (its `ops` table) and the name it prints. */
function opsOf(spec: EndpointSpec, endpoint: Endpoint): [ops: string, name: string] {
  switch (spec.kind) {
    case 'null': return ['null_ops', 'null:'];
    case 'stdio': return [endpoint.sequential ? 'pipe_ops' : 'file_ops', '-'];
    case 'file': return [endpoint.sequential ? 'pipe_ops' : 'file_ops', spec.path];
    case 'uri': return ['nbd_ops', spec.uri];
    case 'command': return ['nbd_ops', spec.argv[0] ?? ''];
  }
}

function sizeText(size: bigint): string {
  const unsigned = size < 0n ? size + 2n ** 64n : size;
  return `size=${size} (${humanSize(unsigned).text})`;
}

/**
 * The two lines for one side (`src` or `dst`). A new destination file grows to the source's
 * size as the copy writes it; libnbd sizes it first, so `sizeHint` gives that size.
 */
export function endpointLines(side: 'src' | 'dst', spec: EndpointSpec, endpoint: Endpoint, sizeHint?: number): string[] {
  const [ops, name] = opsOf(spec, endpoint);
  const known = endpoint.size ?? (spec.kind === 'file' ? sizeHint : undefined);
  const size = spec.kind === 'null' ? NULL_SIZE : known === undefined ? UNKNOWN_SIZE : BigInt(known);
  return [
    `${side}: ${ops} "${name}"`,
    `${side}: ${sizeText(size)}, preferred block size=${endpoint.preferredBlockSize}`,
  ];
}

export interface RunShape {
  connections: number;
  requests: number;
  synchronous: boolean;
}

/**
 * The connections, requests and threads line. We copy on one event loop; the figure libnbd
 * calls threads is one per connection there too (it never runs more threads than connections).
 */
export function runLine(shape: RunShape): string {
  return `connections=${shape.connections} requests=${shape.requests} threads=${shape.connections} synchronous=${shape.synchronous}`;
}

/**
 * What the copier will use, by the rules it follows: streams and --synchronous copy in
 * order on one connection; otherwise both sides must take the extra connections.
 */
export function runShape(source: Endpoint, destination: Endpoint, wanted: { connections: number; requests: number; synchronous: boolean }): RunShape {
  const synchronous = wanted.synchronous || source.sequential || destination.sequential || source.size === undefined;
  const connections = synchronous ? 1 : Math.max(1, Math.min(wanted.connections, source.maxConnections, destination.maxConnections));
  return { connections, requests: wanted.requests, synchronous };
}
