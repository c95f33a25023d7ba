// What the user named as SOURCE or DESTINATION, before anything is opened.

export type EndpointSpec =
  | { kind: 'stdio' }
  | { kind: 'null' }
  | { kind: 'uri'; uri: string }
  | { kind: 'command'; argv: string[] }
  | { kind: 'file'; path: string };

const URI_SCHEME = /^nbds?(\+(unix|vsock|tcp))?:/i;

/** A string argument, or the words of a `[ CMD ARGS ]` group. */
export function parseEndpointSpec(arg: string | string[]): EndpointSpec {
  if (Array.isArray(arg)) return { kind: 'command', argv: arg };
  if (arg === '-') return { kind: 'stdio' };
  if (arg === 'null:') return { kind: 'null' };
  if (URI_SCHEME.test(arg)) return { kind: 'uri', uri: arg };
  return { kind: 'file', path: arg };
}

export function describeSpec(spec: EndpointSpec): string {
  switch (spec.kind) {
    case 'stdio': return '-';
    case 'null': return 'null:';
    case 'uri': return spec.uri;
    case 'command': return `[ ${spec.argv.join(' ')} ]`;
    case 'file': return spec.path;
  }
}
