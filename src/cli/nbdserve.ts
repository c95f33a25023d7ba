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
import { errorLine } from './report-error.js';

const USAGE = `usage: nbdserve [-U SOCKET | -U - | --vsock] [-p PORT] [-i ADDR] [-s] [-r] [-e EXPORT]
                [--description TEXT] [-o] [--no-sr] [--no-eh] [-f] [-P PIDFILE]
                [--exit-with-parent] [--run CMD] [-v]
                [--tls=off|on|require] [--tls-certificates DIR] [--tls-psk FILE] [--tls-verify-peer]
                [--error-rate KIND=RATE[:ERRNO]] [--delay KIND=MS] [--disconnect-after N]
                BACKEND [ARGS...]
backends: memory SIZE | file PATH | null SIZE | pattern SIZE
          | sparse-random SIZE [percent=N] [seed=N] [runlength=SIZE]
          | nbd {command=CMD [arg=ARG]... | hostname=HOST [port=PORT] | vhost-cid=CID [port=PORT]
                | socket=PATH | socket-fd=FD | [uri=]URI} [export=NAME] [dynamic-export=BOOL]
                [retry=N] [shared=BOOL] [tls=off|on|require] [tls-certificates=DIR]
                [tls-verify=BOOL] [tls-username=NAME] [tls-psk=FILE]
SIZE takes suffixes like nbdkit (1M, 4G, 1T).`;

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
  backend: string[];
  help: boolean;
  version: boolean;
}

class UsageError extends Error {}

/**
 * Options may come anywhere before `--`, as nbdkit's GNU getopt permutes them
 * (`nbdserve -U - memory 1G --run 'nbdinfo "$uri"'`); the other words, in order, are the
 * backend and its parameters, and everything after `--` belongs to the backend untouched.
 */
export function parseArgs(argv: readonly string[]): CliOptions {
  const o: CliOptions = {
    single: false, vsock: false, readOnly: false, oldstyle: false, structuredReplies: true, extendedHeaders: true,
    exitWithParent: false, verbose: false, backend: [], help: false, version: false,
  };
  let tlsMode: ServerTlsOptions['mode'] | undefined;
  const tls: Partial<ServerTlsOptions> = {};
  let faults: FaultOptions | undefined;
  let i = 0;
  const value = (flag: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  const words: string[] = [];
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') { i++; break; }
    if (!arg.startsWith('-') || arg === '-') {
      words.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    switch (flag) {
      case '-U': case '--unix': o.unixSocket = value(flag, inline); break;
      case '-p': case '--port': {
        const v = value(flag, inline);
        const port = Number(v);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bad port '${v}'`);
        o.port = port;
        break;
      }
      case '-i': case '--ipaddr': o.host = value(flag, inline); break;
      case '-s': case '--single': o.single = true; break;
      case '--vsock': o.vsock = true; break;
      case '-r': case '--readonly': case '--read-only': o.readOnly = true; break;
      case '-e': case '--exportname': case '--export-name': o.exportName = value(flag, inline); break;
      case '--description': o.description = value(flag, inline); break;
      case '-o': case '--oldstyle': o.oldstyle = true; break;
      case '--no-sr': o.structuredReplies = false; break;
      case '--no-eh': case '--no-extended-headers': o.extendedHeaders = false; break;
      case '-f': case '--foreground': break;
      case '-P': case '--pidfile': o.pidFile = value(flag, inline); break;
      case '--exit-with-parent': o.exitWithParent = true; break;
      case '--run': o.run = value(flag, inline); break;
      case '-v': case '--verbose': o.verbose = true; break;
      case '--tls': {
        const v = value(flag, inline);
        if (v !== 'off' && v !== 'on' && v !== 'require') throw new UsageError(`--tls must be off, on or require, got '${v}'`);
        tlsMode = v;
        break;
      }
      case '--tls-certificates': tls.certificates = value(flag, inline); break;
      case '--tls-psk': tls.pskFile = value(flag, inline); break;
      case '--tls-verify-peer': tls.verifyPeer = true; break;
      case '--error-rate': faults = parseErrorRate(value(flag, inline), faults ?? {}); break;
      case '--delay': faults = parseDelay(value(flag, inline), faults ?? {}); break;
      case '--disconnect-after': {
        const v = value(flag, inline);
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--disconnect-after needs a count, got '${v}'`);
        (faults ??= {}).disconnectAfter = n;
        break;
      }
      case '-h': case '--help': o.help = true; break;
      case '-V': case '--version': o.version = true; break;
      default: throw new UsageError(`unknown option '${arg}'`);
    }
  }
  o.backend = [...words, ...argv.slice(i)];
  if (tlsMode !== undefined && tlsMode !== 'off') o.tls = { mode: tlsMode, ...tls };
  o.faults = faults;
  if (!o.help && !o.version && o.backend.length === 0) throw new UsageError('no backend given');
  if (o.single && (o.unixSocket !== undefined || o.port !== undefined)) throw new UsageError('-s cannot be combined with -U or -p');
  if (o.vsock && (o.single || o.unixSocket !== undefined)) throw new UsageError('--vsock cannot be combined with -s or -U');
  if (o.single && o.run !== undefined) throw new UsageError('-s cannot be combined with --run');
  return o;
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
    tls: o.tls,
    log,
    warn: (m) => { process.stderr.write(`nbdserve: warning: ${m}\n`); },
  };
}

export async function run(argv: readonly string[]): Promise<number> {
  const o = parseArgs(argv);
  if (o.help) {
    process.stdout.write(USAGE + '\n');
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
