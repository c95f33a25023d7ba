// The nbd backend's parameters, nbdkit-nbd-plugin's names and meanings: where the upstream
// server is (exactly one of command, hostname, vhost-cid, socket, socket-fd, uri), which
// export, how to share and retry the connection, and TLS towards the upstream.
import { DEFAULT_PORT } from '../../../protocol/constants.js';
import { NbdError } from '../../../protocol/errors.js';
import type { ClientTlsOptions } from '../../../tls/types.js';
import { lookupService } from '../../../client/service-port.js';

export type UpstreamAddress =
  | { kind: 'command'; argv: string[] }
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'vsock'; cid: number; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'fd'; fd: number }
  | { kind: 'uri'; uri: string };

export interface UpstreamParams {
  address: UpstreamAddress;
  /** export=; undefined leaves it to the URI (or ''). */
  exportName: string | undefined;
  /** Pass each client's export name on, and list the upstream's exports. */
  dynamicExport: boolean;
  /** More tries for a connection that fails, one second apart. */
  retry: number;
  /** One upstream connection for every client. */
  shared: boolean;
  /** TLS towards the upstream; undefined = as the URI says (or off). */
  tls: ClientTlsOptions | undefined;
}

/** Parameters that name the upstream; exactly one must be given. */
const ADDRESS_KEYS = ['command', 'hostname', 'vhost-cid', 'socket', 'socket-fd', 'uri'] as const;
const OTHER_KEYS = ['arg', 'port', 'export', 'dynamic-export', 'retry', 'shared', 'tls', 'tls-certificates', 'tls-verify', 'tls-username', 'tls-psk'];

function bad(message: string): NbdError {
  return new NbdError('EINVAL', `nbd: ${message}`);
}

/** nbdkit's boolean words. */
export function parseBool(key: string, text: string): boolean {
  const t = text.toLowerCase();
  if (['1', 'true', 'on', 'yes'].includes(t)) return true;
  if (['0', 'false', 'off', 'no'].includes(t)) return false;
  throw bad(`${key} must be a boolean (true/false, on/off, yes/no, 1/0), got '${text}'`);
}

function parseInteger(key: string, text: string, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) > max) throw bad(`${key} must be an integer from 0 to ${max}, got '${text}'`);
  return Number(text);
}

/** A TCP port by number or by service name (/etc/services), as getaddrinfo would find it. */
export function resolvePort(text: string, servicesFile = '/etc/services'): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < 1 || n > 65535) throw bad(`port must be from 1 to 65535, got '${text}'`);
    return n;
  }
  const port = lookupService(text, servicesFile);
  if (port !== undefined) return port;
  throw bad(`unknown port or service name '${text}'`);
}

export function parseUpstreamParams(args: readonly string[]): UpstreamParams {
  const values = new Map<string, string>();
  const argv: string[] = [];
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq > 0 ? arg.slice(0, eq).toLowerCase() : '';
    // A bare word is the magic parameter, uri (as nbdkit: `nbd nbd://host/`).
    const [k, v] = ADDRESS_KEYS.includes(key as never) || OTHER_KEYS.includes(key) ? [key, arg.slice(eq + 1)] : ['uri', arg];
    if (eq > 0 && k === 'uri' && key !== 'uri' && !/^nbds?(\+[a-z]+)?:/i.test(arg)) throw bad(`unknown parameter '${key}'`);
    if (k === 'arg') {
      argv.push(v);
      continue;
    }
    if (values.has(k)) throw bad(`${k} given twice`);
    values.set(k, v);
  }
  const given = ADDRESS_KEYS.filter((k) => values.has(k));
  if (given.length === 0) throw bad(`where is the server? give one of ${ADDRESS_KEYS.join(', ')}`);
  if (given.length > 1) throw bad(`${given.join(' and ')} cannot be used together`);
  const where = given[0]!;
  const text = values.get(where)!;
  if (text === '') throw bad(`${where} must not be empty`);
  if (argv.length > 0 && where !== 'command') throw bad('arg= is only for command=');
  if (values.has('port') && where !== 'hostname' && where !== 'vhost-cid') throw bad('port= is only for hostname= and vhost-cid=');

  let address: UpstreamAddress;
  const port = values.get('port');
  switch (where) {
    case 'command': address = { kind: 'command', argv: [text, ...argv] }; break;
    case 'hostname': address = { kind: 'tcp', host: text, port: port === undefined ? DEFAULT_PORT : resolvePort(port) }; break;
    case 'vhost-cid':
      address = {
        kind: 'vsock', cid: parseInteger('vhost-cid', text, 0xffff_ffff),
        port: port === undefined ? DEFAULT_PORT : parseInteger('port', port, 0xffff_ffff),
      };
      break;
    case 'socket': address = { kind: 'unix', path: text }; break;
    case 'socket-fd': address = { kind: 'fd', fd: parseInteger('socket-fd', text, 0x7fff_ffff) }; break;
    case 'uri': address = { kind: 'uri', uri: text }; break;
  }

  const exportName = values.get('export');
  const dynamicExport = values.has('dynamic-export') ? parseBool('dynamic-export', values.get('dynamic-export')!) : false;
  const sharedByDefault = where === 'command' || where === 'socket-fd';
  const shared = values.has('shared') ? parseBool('shared', values.get('shared')!) : sharedByDefault;
  if (exportName !== undefined && where === 'uri') throw bad('export= cannot be used with uri= (the export name is in the URI)');
  if (exportName !== undefined && dynamicExport) throw bad('export= cannot be used with dynamic-export=true');
  if (dynamicExport && shared) throw bad('dynamic-export=true needs shared=false (and so cannot be used with command= or socket-fd=)');
  if (where === 'socket-fd' && !shared) throw bad('socket-fd= is one connection: it cannot be used with shared=false');
  const retry = values.has('retry') ? parseInteger('retry', values.get('retry')!, 1_000_000) : 0;

  return { address, exportName, dynamicExport, retry, shared, tls: parseTls(values) };
}

function parseTls(values: Map<string, string>): ClientTlsOptions | undefined {
  const mode = values.get('tls');
  const details = ['tls-certificates', 'tls-verify', 'tls-username', 'tls-psk'].some((k) => values.has(k));
  if (mode === undefined && !details) return undefined;
  const modes: Record<string, ClientTlsOptions['mode']> = { off: 'off', on: 'allow', require: 'require' };
  const m = mode === undefined ? 'allow' : modes[mode.toLowerCase()];
  if (m === undefined) throw bad(`tls must be off, on or require, got '${mode}'`);
  const tls: ClientTlsOptions = { mode: m };
  if (values.has('tls-certificates')) tls.certificates = values.get('tls-certificates')!;
  if (values.has('tls-verify')) tls.verifyPeer = parseBool('tls-verify', values.get('tls-verify')!);
  if (values.has('tls-username')) tls.username = values.get('tls-username')!;
  if (values.has('tls-psk')) tls.pskFile = values.get('tls-psk')!;
  return tls;
}
