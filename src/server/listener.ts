// startServer: resolve exports, listen (Unix socket, TCP, or an inherited fd), run one session
// per connection, and shut everything down on close().
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { NbdError, type ErrnoCode } from '../protocol/errors.js';
import { createBackend } from './backends/factory.js';
import type { Backend } from './backends/types.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, type BackendInput, type ExportSpec, type ResolvedExport,
  type ServerOptions, type SessionConfig,
} from './options.js';
import { runSession, type Session } from './session.js';
import type { ServerTlsOptions } from '../tls/types.js';

export interface RunningServer {
  /** NBD URI of the default export (nbd+unix://... or nbd://...). */
  readonly uri: string;
  readonly unixSocket?: string;
  readonly port?: number;
  /** TLS as actually served: 'off' when --tls=on found no credentials (see checkTls). */
  readonly tlsMode: ServerTlsOptions['mode'];
  /** Connections currently open (tests check that none leak). */
  readonly connections: number;
  /** Serve one more connection that arrived some other way (e.g. stdin/stdout). */
  serve(stream: Duplex): Promise<void>;
  close(): Promise<void>;
}

function isBackend(input: BackendInput): input is Backend {
  return !Array.isArray(input) && typeof (input as Backend).read === 'function';
}

/** Resolves the export list; backends built here from names are closed with the server. */
export async function resolveExports(options: ServerOptions, owned: Backend[]): Promise<SessionConfig['exports']> {
  const build = async (input: BackendInput): Promise<Backend> => {
    if (isBackend(input)) return input;
    const [name, ...args] = input as readonly string[];
    if (!name) throw new NbdError('EINVAL', 'empty backend specification');
    const b = await createBackend(name, args, { readOnly: options.readOnly, warn: options.warn });
    owned.push(b);
    return b;
  };
  const exports = new Map<string, ResolvedExport>();
  if (options.exports) {
    for (const [name, value] of Object.entries(options.exports)) {
      const spec: ExportSpec | undefined = isExportSpec(value) ? value : undefined;
      const backend = await build(spec ? spec.backend : (value as BackendInput));
      exports.set(name, {
        name,
        backend,
        description: spec?.description,
        readOnly: (options.readOnly ?? false) || (spec?.readOnly ?? false),
      });
    }
  }
  if (options.backend) {
    const name = options.exportName ?? '';
    if (exports.has(name)) throw new NbdError('EINVAL', `export '${name}' given twice`);
    exports.set(name, {
      name,
      backend: await build(options.backend),
      description: options.description,
      readOnly: options.readOnly ?? false,
    });
  }
  if (exports.size === 0) throw new NbdError('EINVAL', 'no backend or exports given');
  return exports;
}

function isExportSpec(v: unknown): v is ExportSpec {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'backend' in v;
}

export function sessionConfig(options: ServerOptions, exports: SessionConfig['exports']): SessionConfig {
  const structured = options.structuredReplies ?? true;
  return {
    exports,
    // "" is the default export when listed; otherwise the first one is.
    defaultExport: exports.get('') ?? exports.values().next().value!,
    oldstyle: options.oldstyle ?? false,
    structuredReplies: structured,
    extendedHeaders: structured && (options.extendedHeaders ?? true),
    faults: options.faults,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    tls: options.tls,
    log: options.log,
  };
}

/**
 * Loads the TLS credentials before anything else exists, so a missing file stops the server at
 * start-up instead of failing every client later. As nbdkit: with mode 'on' and no credentials
 * given or found in the default directories, warn and serve plaintext only (STARTTLS is then
 * refused); credentials named explicitly must load in every mode.
 */
async function checkTls(options: ServerOptions): Promise<ServerTlsOptions | undefined> {
  const tls = options.tls;
  if (tls === undefined || tls.mode === 'off') return undefined;
  // The same literal specifier as the STARTTLS handler, so both share one module (and its
  // credential cache), also in the esbuild bundle; servers without TLS never evaluate it.
  const mod = await import('../tls/server.js');
  try {
    mod.loadServerTlsContext(tls);
    return tls;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    // By code, not instanceof, so this holds whichever copy of the NbdError class the TLS module
    // was built with (the CLI bundle once loaded it from dist/, with a class of its own).
    const code = (err as { code?: unknown }).code;
    const nothingGiven = tls.pskFile === undefined && tls.certificates === undefined;
    if (tls.mode === 'on' && nothingGiven && code === 'ENOENT') {
      options.warn?.(`--tls=on but ${why}; TLS is disabled and TLS clients will be refused`);
      return undefined;
    }
    throw new NbdError(typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code as ErrnoCode : 'EINVAL', `--tls=${tls.mode}: ${why}`, { cause: err });
  }
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const tls = await checkTls(options);
  if (tls !== options.tls) options = { ...options, tls };
  const owned: Backend[] = [];
  const exports = await resolveExports(options, owned);
  const config = sessionConfig(options, exports);
  const sessions = new Set<Session>();
  const server = net.createServer({ allowHalfOpen: true });

  const serve = (stream: Duplex): Promise<void> => {
    const session = runSession(stream, config);
    sessions.add(session);
    return session.done.finally(() => sessions.delete(session));
  };
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  server.on('connection', (socket) => {
    if (maxConnections > 0 && sessions.size >= maxConnections) {
      // Closed before the greeting: the client sees EOF at once instead of waiting.
      options.log?.(`refusing a connection: ${maxConnections} already open (--max-connections)`);
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    socket.setNoDelay?.(true);
    void serve(socket);
  });
  server.on('error', (err) => options.log?.(`listener error: ${err.message}`));

  let unixSocket: string | undefined;
  let port: number | undefined;
  let privateDir: string | undefined;
  const listening = options.listen ?? true;
  // AF_VSOCK: a socket net cannot make; the FFI makes it and net serves it as any stream.
  const vsock = listening && options.vsockPort !== undefined
    ? await import('../sys/vsock.js').then((m) => m.listenVsock(options.vsockPort!)).catch(async (err: Error) => {
      for (const b of owned) await b.close();
      throw new NbdError('EINVAL', `cannot listen: ${err.message}`, { cause: err });
    })
    : undefined;
  if (listening) await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (vsock !== undefined) {
      server.listen(vsock, resolve);
    } else if (options.listenFd !== undefined) {
      server.listen({ fd: options.listenFd }, resolve);
    } else if (options.port !== undefined) {
      server.listen({ port: options.port, host: options.host ?? 'localhost' }, resolve);
    } else {
      if (options.unixSocket === undefined) privateDir = mkdtempSync(join(tmpdir(), 'nbdserve-'));
      unixSocket = options.unixSocket ?? join(privateDir!, 'sock');
      server.listen({ path: unixSocket }, resolve);
    }
  }).catch(async (err: Error) => {
    for (const b of owned) await b.close();
    throw new NbdError('EINVAL', `cannot listen: ${err.message}`, { cause: err });
  });
  const addr = listening ? server.address() : null;
  if (addr && typeof addr === 'object') port = addr.port;

  const exportPath = encodeURIComponent(config.defaultExport.name);
  const scheme = options.tls && options.tls.mode !== 'off' ? 'nbds' : 'nbd';
  const uri = vsock !== undefined
    // CID 1 is this machine (VMADDR_CID_LOCAL), as a local client would reach us.
    ? `${scheme}+vsock://1:${options.vsockPort}/${exportPath}`
    : unixSocket !== undefined
    ? `${scheme}+unix:///${exportPath}?socket=${encodeURIComponent(unixSocket)}`
    : port !== undefined ? `${scheme}://localhost:${port}/${exportPath}` : `${scheme}+unix:///${exportPath}`;

  let closing: Promise<void> | undefined;
  return {
    uri,
    unixSocket,
    port,
    tlsMode: tls?.mode ?? 'off',
    get connections() {
      return sessions.size;
    },
    serve,
    close: () => {
      closing ??= (async () => {
        const stopped = listening ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
        for (const s of sessions) s.destroy();
        await Promise.all([...sessions].map((s) => s.done));
        await stopped;
        for (const b of owned) await b.close();
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}
