// Debug messages of one connection: where they go (a caller's Logger, or stderr when
// NBD_DEBUG=1 / LIBNBD_DEBUG=1) and the connection's name in each of them.
import { debugEnabled } from './debug.js';

/**
 * Receives a connection's debug messages (libnbd's set_debug_callback): `name` is the
 * connection's (ClientOptions.name, default nbd1, nbd2, ...), `message` one line without
 * its newline. Messages are only built when a logger is set or NBD_DEBUG is on, so a
 * connection without one pays a boolean test per request.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const c = await connect(uri, { name: 'backup', logger: (name, message) => lines.push(`${name}: ${message}`) });
 * await c.pread(new Uint8Array(512), 0);
 * // lines: ['backup: sending NBD_OPT_GO ...', ..., 'backup: request: pread cookie 1 offset 0 length 512 flags 0x0', ...]
 * ```
 */
export type Logger = (name: string, message: string) => void;

let connections = 0;

/** The log of one connection; `enabled` is the one test on hot paths. */
export class ConnectionLog {
  readonly enabled: boolean;
  readonly name: string;
  private readonly sink: Logger;

  constructor(logger?: Logger, name?: string) {
    this.name = name ?? `nbd${++connections}`;
    this.enabled = logger !== undefined || debugEnabled;
    this.sink = logger ?? toStderr;
  }

  /** Callers pass a closure so the message is only built when the log is on. */
  debug(message: () => string): void {
    if (this.enabled) this.sink(this.name, message());
  }
}

function toStderr(name: string, message: string): void {
  process.stderr.write(`nbd: debug: ${name}: ${message}\n`);
}

/** The log of code that runs before a connection exists, or outside one. */
export const processLog = new ConnectionLog(undefined, 'nbd');
