// TCP ports by number or by service name, looked up in the services database (/etc/services)
// as getservbyname(3) does, so `{ host, port: 'nbd' }` reaches 10809 like libnbd and nbdkit.
import { readFileSync } from 'node:fs';
import { NbdError } from '../protocol/errors.js';

/**
 * The TCP port of service `name` (its name or one of its aliases) in `servicesFile`, or
 * undefined when it has none there (or the file cannot be read).
 *
 * @example
 * ```ts
 * lookupService('nbd'); // 10809 where /etc/services lists it
 * ```
 */
export function lookupService(name: string, servicesFile = '/etc/services'): number | undefined {
  let table: string;
  try {
    table = readFileSync(servicesFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of table.split('\n')) {
    const words = (line.split('#')[0] ?? '').trim().split(/\s+/);
    const m = /^(\d+)\/tcp$/.exec(words[1] ?? '');
    if (m && (words[0] === name || words.slice(2).includes(name))) return Number(m[1]);
  }
  return undefined;
}

/**
 * A connect() port: a number, digits, or a service name. Throws EINVAL naming the value
 * when it is none of those or out of 1-65535.
 *
 * @example
 * ```ts
 * await connect({ host: 'server.example', port: 'nbd' }); // 10809
 * ```
 */
export function resolvePort(port: number | string | undefined, servicesFile?: string): number {
  if (port === undefined) return 10809;
  const n = typeof port === 'number' ? port
    : /^\d+$/.test(port) ? Number(port)
    : lookupService(port, servicesFile) ?? NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 65535) {
    const why = typeof port === 'string' && !/^\d+$/.test(port) ? 'unknown service name' : 'invalid port';
    throw new NbdError('EINVAL', `connect: ${why} '${port}'`);
  }
  return n;
}
