// The high-level entry point: a target (URI, socket path, host/port, command, socket
// activation, fd or existing stream) plus options -> a ready (or option-mode) NbdClient.
import { DEFAULT_PORT } from '../protocol/constants.js';
import { NbdError } from '../protocol/errors.js';
import type { ClientTlsOptions } from '../tls/types.js';
import { NbdClient, type ClientOptions } from './nbd-client.js';
import {
  openActivation, openCommand, openFd, openTcp, openUnix, serverExitWithin, type ConnectTarget, type Transport,
} from './transport.js';
import { parseNbdUri, type NbdUri } from './uri.js';
import type { UriAllowList } from './uri-allow.js';
import type { ReconnectingClient } from './reconnect.js';
import type { RetryOptions } from './retry-policy.js';
import { resolvePort } from './service-port.js';

/**
 * connect()'s options: the connection's (ClientOptions) and, for a URI target, what the URI
 * may ask for (UriAllowList: by default no local files, as libnbd).
 */
export interface ConnectOptions extends ClientOptions, UriAllowList {
  /**
   * Kernel send buffer for the socket, in bytes (best effort; above the system limit only
   * with CAP_NET_ADMIN). Worth it for connections that send many large WRITEs.
   */
  sendBufferSize?: number;
}

/** setSendBufferSize, or undefined when the FFI cannot load: it is only a speed-up. */
async function loadSendBufferSetter(): Promise<((fd: number, bytes: number) => void) | undefined> {
  try {
    const { setSendBufferSize } = await import('../sys/socket-buffer.js');
    return (fd, bytes) => {
      try {
        setSendBufferSize(fd, bytes);
      } catch {
        // Best effort: the default buffer works, only slower.
      }
    };
  } catch {
    return undefined;
  }
}

/** File descriptor of a socket net opened for us; undefined for other streams. */
function socketFd(stream: unknown): number | undefined {
  const fd = (stream as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** TLS settings a URI implies: nbds means 'require'; tls-* keys fill in the details. */
export function tlsFromUri(u: NbdUri, base?: ClientTlsOptions): ClientTlsOptions | undefined {
  const fromUri = u.tls || u.tlsCertificates !== undefined || u.tlsPskFile !== undefined;
  if (!fromUri && !base) return undefined;
  const tls: ClientTlsOptions = { ...(base ?? { mode: 'off' }) };
  if (u.tls) tls.mode = 'require';
  if (u.tlsCertificates !== undefined) tls.certificates = u.tlsCertificates;
  if (u.tlsVerifyPeer !== undefined) tls.verifyPeer = u.tlsVerifyPeer;
  if (u.tlsPskFile !== undefined) tls.pskFile = u.tlsPskFile;
  if (u.username !== undefined) tls.username = u.username;
  if (u.transport === 'tcp' && u.host !== undefined) tls.hostname ??= u.host;
  return tls;
}

/**
 * The TLS settings for a `{ host }` target: its host is the name the server's certificate
 * must carry, unless `tls.hostname` names another (URIs get theirs from tlsFromUri). Without
 * it the chain would be checked but any name accepted: a man in the middle holding any
 * certificate from the same CA would pass.
 */
export function tlsForTarget(target: ConnectTarget, tls: ClientTlsOptions | undefined): ClientTlsOptions | undefined {
  if (tls === undefined || typeof target === 'string' || !('host' in target)) return tls;
  if (tls.hostname !== undefined && tls.hostname !== '') return tls;
  return { ...tls, hostname: target.host };
}

/** connect()'s options for one target: a URI's export name and TLS settings filled in. */
export function prepareConnect(target: ConnectTarget, options: ConnectOptions): ConnectOptions {
  const opts: ConnectOptions = { ...options };
  if (typeof target === 'string') {
    const u = parseNbdUri(target, options);
    opts.exportName ??= u.exportName;
    const tls = tlsFromUri(u, options.tls);
    if (tls) opts.tls = tls;
  } else {
    const tls = tlsForTarget(target, options.tls);
    if (tls) opts.tls = tls;
  }
  return opts;
}

async function openUriTransport(u: NbdUri, reuseBuffer: boolean): Promise<Transport> {
  switch (u.transport) {
    case 'unix': return openUnix(u.socket!, reuseBuffer);
    case 'tcp': return openTcp(u.host!, u.port!, reuseBuffer);
    case 'vsock': {
      const cid = u.host !== undefined && /^\d+$/.test(u.host) ? Number(u.host) : NaN;
      if (!(cid <= 0xffff_ffff)) throw new NbdError('EINVAL', `connect: vsock CID '${u.host ?? ''}' is not a number`);
      return openVsock(cid, u.port ?? DEFAULT_PORT);
    }
  }
}

/** AF_VSOCK, which Node's net lacks: the socket is made through the FFI, loaded only for it. */
async function openVsock(cid: number, port: number): Promise<Transport> {
  const { connectVsock } = await import('../sys/vsock.js');
  const stream = await connectVsock(cid, port);
  return { stream, address: {}, cleanup: () => Promise.resolve() };
}

/**
 * Opens the stream for `target`. `plainOnly` (no TLS will be layered on top) lets sockets we
 * open ourselves read into one reused buffer; a TLS layer needs an ordinary socket. `allow`:
 * what a URI target may ask for (UriAllowList; libnbd's defaults).
 */
export async function openTransport(target: ConnectTarget, plainOnly = false, allow: UriAllowList = {}): Promise<Transport> {
  if (typeof target === 'string') return openUriTransport(parseNbdUri(target, allow), plainOnly);
  if ('unixSocket' in target) return openUnix(target.unixSocket, plainOnly);
  if ('host' in target) {
    return openTcp(target.host, resolvePort(target.port), plainOnly);
  }
  if ('vsock' in target) return openVsock(target.vsock.cid, target.vsock.port ?? DEFAULT_PORT);
  if ('command' in target) return openCommand(target.command);
  if ('activation' in target) return openActivation(target.activation, plainOnly);
  if ('fd' in target) return openFd(target.fd);
  if ('socket' in target) return { stream: target.socket, address: {}, cleanup: () => Promise.resolve() };
  throw new NbdError('EINVAL', 'connect: unknown target');
}

/**
 * Opens one NBD connection. A URI target supplies the export name and TLS settings unless
 * `options` sets them. Resolves once the export is open (or in option mode with `optMode`).
 *
 * With `retries` (see RetryOptions) the connection is opened again when it is lost, and the
 * commands that had no reply are sent again: reads, writes, zeroes, trims, caches, flushes
 * and block status, all of which give the same result when repeated. The first connection is
 * retried the same way when its server is not there (yet): the socket refused or missing, or
 * the connection dropped during the handshake. Not retried, opening or reopening: other
 * failures to open (a bad address, an unknown export, TLS refused or untrusted, a PSK the
 * server rejects with a TLS alert, as OpenSSL servers and ours do), commands the server
 * answered with an error other than ESHUTDOWN, protocol violations, and a reopened export that
 * is not the same (its size or read-only flag changed). nbdkit hangs up on a wrong PSK key
 * without an alert, which looks like a server going away, so that waits for the retries.
 * Writes the server acknowledged before it died are taken as done: a server that loses
 * acknowledged writes on a crash needs a flush to keep them.
 * Only for targets that can be connected to again: a URI, `{ unixSocket }` or `{ host }`.
 */
export function connect(target: ConnectTarget, options: ConnectOptions & RetryOptions): Promise<ReconnectingClient>;
export function connect(target: ConnectTarget, options?: ConnectOptions): Promise<NbdClient>;
export async function connect(
  target: ConnectTarget, options: ConnectOptions & Partial<RetryOptions> = {},
): Promise<NbdClient | ReconnectingClient> {
  if (options.retries === undefined) return connectOnce(target, options);
  const { retries, retryDelayMs, onRetry, ...rest } = options;
  if (!Number.isSafeInteger(retries) || retries < 0) {
    throw new NbdError('EINVAL', `connect: retries must be a whole number of at least 0, got ${retries}`);
  }
  if (retryDelayMs !== undefined && !(retryDelayMs >= 0)) {
    throw new NbdError('EINVAL', `connect: retryDelayMs must be at least 0, got ${retryDelayMs}`);
  }
  if (rest.optMode) throw new NbdError('EINVAL', 'connect: retries cannot be combined with optMode');
  if (typeof target !== 'string' && !('unixSocket' in target) && !('host' in target)) {
    throw new NbdError('EINVAL', 'connect: retries need a target that can be connected to again (a URI, unixSocket or host)');
  }
  const policy = { retries, retryDelayMs, onRetry };
  // Loaded only when asked for, so that a plain connection does not evaluate them at start-up.
  const [{ openWithRetries }, { ReconnectingClient }] = await Promise.all([import('./retry-policy.js'), import('./reconnect.js')]);
  const first = await openWithRetries(() => connectOnce(target, rest), policy);
  return new ReconnectingClient(first, () => connectOnce(target, rest), policy);
}

async function connectOnce(target: ConnectTarget, options: ConnectOptions): Promise<NbdClient> {
  const opts = prepareConnect(target, options);
  // Loaded on demand (koffi costs start-up time that read-only connections never need), and
  // before connecting: once the socket is open, nothing may wait for the event loop before
  // the client listens, or the server's greeting would be emitted to no one.
  const setSendBufferSize = opts.sendBufferSize !== undefined ? await loadSendBufferSetter() : undefined;
  const transport = await openTransport(target, (opts.tls?.mode ?? 'off') === 'off', opts);
  const fd = setSendBufferSize !== undefined ? socketFd(transport.stream) : undefined;
  if (fd !== undefined) setSendBufferSize!(fd, opts.sendBufferSize!);
  const client = new NbdClient(opts);
  try {
    await client.start(transport);
  } catch (err) {
    throw await serverExitWithin(transport.serverExit, err);
  }
  return client;
}
