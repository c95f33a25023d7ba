// nbdserve: the embedded server on the command line, with nbdkit's flags where they overlap.
//   nbdserve [-U SOCKET|-U -] [-p PORT] [-i ADDR] [-s] [-r] [-e NAME] [-o] [--no-sr] [-f]
//            [-P PIDFILE] [--exit-with-parent] [--run CMD] [-v] BACKEND [ARGS...]
// Options may also follow the backend, as nbdkit's do.
// Node cannot fork into the background, so the server always runs in the foreground (-f is
// accepted and changes nothing).
import { spawn } from 'node:child_process';
import { fstatSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { NbdError } from '../protocol/errors.js';
import { parseDelay, parseErrorRate, type FaultOptions } from '../server/faults.js';
import { startServer, type RunningServer } from '../server/listener.js';
import type { ServerOptions } from '../server/options.js';
import type { ServerTlsOptions } from '../tls/types.js';
import yargs from 'yargs';
import { parseDuration } from './duration.js';
import { errorLine } from './report-error.js';

/** The backends and their parameters: the part of `--help` that yargs cannot derive. */
const BACKENDS = `backends: memory SIZE | file PATH | null SIZE | pattern SIZE
          | sparse-random SIZE [percent=N] [seed=N] [runlength=SIZE]
          | nbd {command=CMD [arg=ARG]... | hostname=HOST [port=PORT] | vhost-cid=CID [port=PORT]
                | socket=PATH | socket-fd=FD | [uri=]URI} [export=NAME] [dynamic-export=BOOL]
                [retry=N] [shared=BOOL] [tls=off|on|require] [tls-certificates=DIR]
                [tls-verify=BOOL] [tls-username=NAME] [tls-psk=FILE]
Parameters are KEY=VALUE or nbdkit's magic first parameter (memory 1G = memory size=1G).
SIZE takes suffixes like nbdkit (1M, 4G, 1T). Options may come anywhere before --;
everything after -- belongs to the backend.`;

export interface CliOptions {
  unixSocket?: string;
  port?: number;
  host?: string;
  /** Listen on AF_VSOCK (port: -p, default 10809). */
  vsock: boolean;
  single: boolean;
  readOnly: boolean;
  exportName?: string;
  description?: string;
  oldstyle: boolean;
  structuredReplies: boolean;
  extendedHeaders: boolean;
  pidFile?: string;
  exitWithParent: boolean;
  run?: string;
  verbose: boolean;
  tls?: ServerTlsOptions;
  faults?: FaultOptions;
  maxConnections?: number;
  handshakeTimeoutMs?: number;
  backend: string[];
  help: boolean;
  /** The generated usage text, when --help was given. */
  helpText?: string;
  version: boolean;
}

class UsageError extends Error {}

/** nbdkit's option table, as yargs options: names, aliases and the help line of each. */
const OPTIONS = {
  unix: { alias: 'U', type: 'string', requiresArg: true, describe: 'listen on a Unix socket (- picks a private one)' },
  port: { alias: 'p', type: 'string', requiresArg: true, describe: 'listen on this TCP (or --vsock) port' },
  ipaddr: { alias: 'i', type: 'string', requiresArg: true, describe: 'listen on this address only' },
  vsock: { type: 'boolean', describe: 'listen on AF_VSOCK' },
  single: { alias: 's', type: 'boolean', describe: 'serve one client on stdin/stdout' },
  readonly: { alias: ['r', 'read-only'], type: 'boolean', describe: 'refuse writes' },
  exportname: { alias: ['e', 'export-name'], type: 'string', requiresArg: true, describe: 'the export name' },
  description: { type: 'string', requiresArg: true, describe: 'the export description' },
  oldstyle: { alias: 'o', type: 'boolean', describe: 'oldstyle handshake' },
  'no-sr': { type: 'boolean', describe: 'no structured replies' },
  'no-eh': { alias: 'no-extended-headers', type: 'boolean', describe: 'no extended headers' },
  foreground: { alias: 'f', type: 'boolean', describe: 'stay in the foreground (always the case)' },
  pidfile: { alias: 'P', type: 'string', requiresArg: true, describe: 'write our pid to this file' },
  'exit-with-parent': { type: 'boolean', describe: 'exit when the parent process exits' },
  run: { type: 'string', requiresArg: true, describe: 'run CMD with $uri etc. set, then exit with its status' },
  verbose: { alias: 'v', type: 'boolean', describe: 'log connections and requests to stderr' },
  tls: { type: 'string', requiresArg: true, describe: 'off, on or require' },
  'tls-certificates': { type: 'string', requiresArg: true, describe: 'X.509 certificate directory' },
  'tls-psk': { type: 'string', requiresArg: true, describe: 'PSK file (psktool format)' },
  'tls-verify-peer': { type: 'boolean', describe: 'require a client certificate' },
  'error-rate': { type: 'string', requiresArg: true, describe: 'inject errors: KIND=RATE[:ERRNO] (repeatable)' },
  delay: { type: 'string', requiresArg: true, describe: 'delay requests: KIND=MS (repeatable)' },
  'disconnect-after': { type: 'string', requiresArg: true, describe: 'drop each connection after N requests' },
  'max-connections': { type: 'string', requiresArg: true, describe: 'clients served at once; more are closed on arrival (default 1024, 0: no limit)' },
  'handshake-timeout': { type: 'string', requiresArg: true, describe: 'drop a client not in transmission after this long (default 10s, 0: none)' },
  help: { alias: 'h', type: 'boolean', describe: 'show this help' },
  version: { alias: 'V', type: 'boolean', describe: 'show the version' },
} as const;

function parser() {
  return yargs()
    .scriptName('nbdserve')
    .usage('usage: nbdserve [OPTIONS] BACKEND [PARAMS...] [-- PARAMS...]')
    .parserConfiguration({
      // Plugin parameters are words, never numbers; option names stay as nbdkit spells them.
      'camel-case-expansion': false, 'boolean-negation': false, 'parse-positional-numbers': false,
      'parse-numbers': false, 'populate--': true, 'strip-aliased': true,
    })
    // Ours, not yargs' built-in ones: -h and -V are options like the others.
    .help(false)
    .version(false)
    .options(OPTIONS)
    .epilogue(BACKENDS)
    .strictOptions()
    .exitProcess(false)
    .wrap(100);
}

/** The last value of an option given more than once (getopt's rule); all of them for repeatable ones. */
function last(v: unknown): string | undefined {
  if (Array.isArray(v)) return last(v[v.length - 1]);
  return v === undefined ? undefined : String(v);
}
function all(v: unknown): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}

/**
 * Options may come anywhere before `--`, as nbdkit's GNU getopt permutes them
 * (`nbdserve -U - memory 1G --run 'nbdinfo "$uri"'`); the other words, in order, are the
 * backend and its parameters, and everything after `--` belongs to the backend untouched.
 */
export function parseArgs(argv: readonly string[]): CliOptions {
  let parsed: Record<string, unknown> = {};
  let failure: Error | undefined;
  parser().parse([...argv], {}, (err, args) => {
    failure = err ?? undefined;
    parsed = args as Record<string, unknown>;
  });
  if (failure !== undefined) throw new UsageError(failure.message.replace(/^Unknown arguments?: /, 'unknown option: '));
  const flag = (name: string): boolean => parsed[name] === true || (Array.isArray(parsed[name]) && (parsed[name] as unknown[]).includes(true));
  const o: CliOptions = {
    unixSocket: last(parsed.unix),
    host: last(parsed.ipaddr),
    vsock: flag('vsock'),
    single: flag('single'),
    readOnly: flag('readonly'),
    exportName: last(parsed.exportname),
    description: last(parsed.description),
    oldstyle: flag('oldstyle'),
    structuredReplies: !flag('no-sr'),
    extendedHeaders: !flag('no-eh'),
    pidFile: last(parsed.pidfile),
    exitWithParent: flag('exit-with-parent'),
    run: last(parsed.run),
    verbose: flag('verbose'),
    backend: [...all(parsed._), ...all(parsed['--'])],
    help: flag('help'),
    version: flag('version'),
  };
  const port = last(parsed.port);
  if (port !== undefined) {
    const n = Number(port);
    if (port === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`bad port '${port}'`);
    o.port = n;
  }
  const tlsMode = last(parsed.tls);
  if (tlsMode !== undefined && tlsMode !== 'off' && tlsMode !== 'on' && tlsMode !== 'require') {
    throw new UsageError(`--tls must be off, on or require, got '${tlsMode}'`);
  }
  if (tlsMode === 'on' || tlsMode === 'require') {
    o.tls = { mode: tlsMode, certificates: last(parsed['tls-certificates']), pskFile: last(parsed['tls-psk']) };
    if (flag('tls-verify-peer')) o.tls.verifyPeer = true;
  }
  let faults: FaultOptions | undefined;
  for (const v of all(parsed['error-rate'])) faults = parseErrorRate(v, faults ?? {});
  for (const v of all(parsed.delay)) faults = parseDelay(v, faults ?? {});
  const after = last(parsed['disconnect-after']);
  if (after !== undefined) {
    const n = Number(after);
    if (after === '' || !Number.isInteger(n) || n < 0) throw new UsageError(`--disconnect-after needs a count, got '${after}'`);
    (faults ??= {}).disconnectAfter = n;
  }
  o.faults = faults;
  const maxConnections = last(parsed['max-connections']);
  if (maxConnections !== undefined) {
    if (!/^\d+$/.test(maxConnections) || !Number.isSafeInteger(Number(maxConnections))) {
      throw new UsageError(`--max-connections needs a count (0: no limit), got '${maxConnections}'`);
    }
    o.maxConnections = Number(maxConnections);
  }
  const handshakeTimeout = last(parsed['handshake-timeout']);
  if (handshakeTimeout !== undefined) {
    try {
      o.handshakeTimeoutMs = parseDuration(handshakeTimeout, '--handshake-timeout');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (o.help) o.helpText = helpText();
  if (!o.help && !o.version && o.backend.length === 0) throw new UsageError('no backend given');
  if (o.single && (o.unixSocket !== undefined || o.port !== undefined)) throw new UsageError('-s cannot be combined with -U or -p');
  if (o.vsock && (o.single || o.unixSocket !== undefined)) throw new UsageError('--vsock cannot be combined with -s or -U');
  if (o.single && o.run !== undefined) throw new UsageError('-s cannot be combined with --run');
  return o;
}

/** The usage text yargs derives from the option table, with the backends after it. */
function helpText(): string {
  let text = '';
  parser().showHelp((s: string) => { text = s; });
  return text;
}

function socketActivationFd(): number | undefined {
  const pid = process.env.LISTEN_PID;
  const fds = process.env.LISTEN_FDS;
  if (pid === undefined || fds === undefined || Number(pid) !== process.pid) return undefined;
  if (fds !== '1') throw new NbdError('EINVAL', `socket activation with LISTEN_FDS=${fds} is not supported (need 1)`);
  return 3;
}

/**
 * stdin/stdout as one Duplex: the socket itself when both are the same socket (libnbd's
 * nbd_connect_command passes one socketpair end as both), else the two streams joined.
 */
function stdioStream(): Duplex {
  const a = fstatSync(0);
  const b = fstatSync(1);
  if (a.isSocket() && a.dev === b.dev && a.ino === b.ino) {
    return new net.Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
  }
  return Duplex.from({ readable: process.stdin, writable: process.stdout });
}

function watchParent(onGone: () => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    // Re-parenting (ppid changes) or a dead parent both mean our parent is gone.
    let alive = process.ppid === parent;
    if (alive) {
      try { process.kill(parent, 0); } catch { alive = false; }
    }
    if (!alive) {
      clearInterval(timer);
      onGone();
    }
  }, 500);
  timer.unref();
}

function serverOptions(o: CliOptions, log: ((m: string) => void) | undefined): ServerOptions {
  return {
    backend: o.backend,
    exportName: o.exportName,
    description: o.description,
    readOnly: o.readOnly,
    oldstyle: o.oldstyle,
    structuredReplies: o.structuredReplies,
    extendedHeaders: o.extendedHeaders,
    faults: o.faults,
    maxConnections: o.maxConnections,
    handshakeTimeoutMs: o.handshakeTimeoutMs,
    tls: o.tls,
    log,
    warn: (m) => { process.stderr.write(`nbdserve: warning: ${m}\n`); },
  };
}

export async function run(argv: readonly string[]): Promise<number> {
  const o = parseArgs(argv);
  if (o.help) {
    process.stdout.write(o.helpText + '\n');
    return 0;
  }
  if (o.version) {
    process.stdout.write('nbdserve 0.1.0\n');
    return 0;
  }
  const log = o.verbose ? (m: string): void => { process.stderr.write(`nbdserve: ${m}\n`); } : undefined;
  const base = serverOptions(o, log);

  if (o.single) {
    // Serve exactly one client on stdin/stdout, then exit: no listener at all.
    const server = await startServer({ ...base, listen: false });
    try {
      await server.serve(stdioStream());
    } finally {
      await server.close();
    }
    return 0;
  }

  const activationFd = socketActivationFd();
  const listen: ServerOptions = activationFd !== undefined ? { listenFd: activationFd }
    : o.unixSocket !== undefined ? (o.unixSocket === '-' ? {} : { unixSocket: o.unixSocket })
    : o.vsock ? { vsockPort: o.port ?? 10809 }
    : o.port !== undefined ? { port: o.port, host: o.host }
    : o.run !== undefined ? {}
    : { port: 10809, host: o.host };
  const server = await startServer({ ...base, ...listen });
  log?.(`serving ${o.backend.join(' ')} at ${server.uri}`);
  if (o.pidFile) writeFileSync(o.pidFile, `${process.pid}\n`);

  let finished = false;
  const shutdown = async (): Promise<void> => {
    if (finished) return;
    finished = true;
    await server.close();
    if (o.pidFile) rmSync(o.pidFile, { force: true });
  };
  if (o.exitWithParent) watchParent(() => { void shutdown().then(() => process.exit(0)); });

  if (o.run !== undefined) return runCaptive(o, server, shutdown);

  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    process.once('SIGHUP', stop);
  });
  await shutdown();
  return 0;
}

/** --run: the command gets the connection details in its environment; its status is ours. */
async function runCaptive(o: CliOptions, server: RunningServer, shutdown: () => Promise<void>): Promise<number> {
  const env = {
    ...process.env,
    uri: server.uri,
    nbd: server.uri,
    unixsocket: server.unixSocket ?? '',
    port: server.port !== undefined ? String(server.port) : '',
    exportname: o.exportName ?? '',
    ...(server.tlsMode !== 'off' ? { tls: server.tlsMode === 'require' ? '2' : '1' } : {}),
  };
  const child = spawn('/bin/sh', ['-c', o.run!], { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals): void => { child.kill(sig); };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const status = await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`nbdserve: --run: ${err.message}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1)));
  });
  process.off('SIGINT', forward);
  process.off('SIGTERM', forward);
  await shutdown();
  return status;
}

function signalNumber(sig: NodeJS.Signals): number | undefined {
  const table: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };
  return table[sig];
}

export function main(argv: string[]): void {
  run(argv).then(
    (code) => {
      process.exitCode = code;
      // Whatever is left (idle timers, a stdin reader) must not keep us alive.
      setImmediate(() => process.exit(code));
    },
    (err: unknown) => {
      const debug = argv.includes('-v') || argv.includes('--verbose') || process.env.NBD_DEBUG === '1';
      const what = err instanceof UsageError ? 'usage' : 'error';
      const why = err instanceof Error ? err.message : String(err);
      // The same one line as nbdcopy's and nbdinfo's: control characters shown as \xHH.
      process.stderr.write(`${errorLine('nbdserve', `${what}: ${why}`)}\n`);
      if (debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
      process.exit(1);
    },
  );
}
