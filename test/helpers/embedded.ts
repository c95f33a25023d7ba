// Our embedded server for tests: in-process (startEmbedded) or as the nbdserve subprocess
// (spawnNbdserve), each on a private Unix socket in a fresh temp dir and always cleaned up;
// plus RawNbd, a byte-level client (the Wire's exact reads and handshake, with raw requests)
// for tests that must send what a well-behaved client never would.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_NAME, OPT_EXTENDED_HEADERS, OPT_GO, OPT_SET_META_CONTEXT,
  OPT_STRUCTURED_REPLY, REP_ACK, REP_META_CONTEXT, buildOption, encodeInfoRequestPayload, encodeMetaContextPayload,
  encodeRequest, requestSize,
} from '../../src/protocol/index.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/index.js';
import { NBDSERVE, ensureBuilt } from './build.js';
import type { Teardown } from './teardown.js';
import { spawnSocketServer, type ServerChild } from './servers.js';
import { Wire } from './wire.js';


export interface Embedded extends RunningServer {
  dir: string;
  socket: string;
  stop(): Promise<void>;
}

/** Our server in this process on `<fresh temp dir>/sock`. */
export async function startEmbedded(options: ServerOptions): Promise<Embedded> {
  const dir = mkdtempSync(join(tmpdir(), 'embedded-'));
  const socket = join(dir, 'sock');
  let server: RunningServer;
  try {
    server = await startServer({ unixSocket: socket, ...options });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return Object.assign(Object.create(server) as RunningServer, {
    uri: server.uri,
    unixSocket: server.unixSocket,
    port: server.port,
    serve: server.serve,
    close: server.close,
    dir,
    socket,
    stop: () => {
      stopped ??= server.close().finally(() => rmSync(dir, { recursive: true, force: true }));
      return stopped;
    },
  }) as Embedded;
}

/** startEmbedded for a test file whose teardown (see teardown.ts) stop each server after its test. */
export function embeddedStarter(cleanups: Pick<Teardown, 'push'>): (options: ServerOptions) => Promise<Embedded> {
  return async (options) => {
    const s = await startEmbedded(options);
    cleanups.push(() => s.stop());
    return s;
  };
}

export interface SpawnedNbdserve {
  uri: string;
  socket: string;
  dir: string;
  child: ServerChild;
  stderr(): string;
  stop(): Promise<void>;
}

/** `bin/nbdserve -U <fresh dir>/sock ARGS...` as a subprocess; stop() kills and reaps it. */
export async function spawnNbdserve(args: string[], exportName = ''): Promise<SpawnedNbdserve> {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'nbdserve-test-'));
  const socket = join(dir, 'sock');
  const { child, stderr, stop } = await spawnSocketServer(
    process.execPath, [NBDSERVE, '-U', socket, ...args], socket, dir, `nbdserve ${args.join(' ')}`, 15_000,
  );
  return { uri: `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socket}`, socket, dir, child, stderr, stop };
}

/**
 * Byte-level NBD connection for tests: the Wire's exact reads, handshake and options, plus
 * what a client needs past the handshake (negotiation to transmission, raw requests).
 */
export class RawNbd extends Wire {
  extended = false;

  private constructor(readonly socket: net.Socket) {
    super(socket);
  }

  static connect(path: string): Promise<RawNbd> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path, allowHalfOpen: true });
      s.once('connect', () => resolve(new RawNbd(s)));
      s.once('error', reject);
    });
  }

  sendOption(option: number, payload?: Uint8Array): void {
    this.write(buildOption(option, payload));
  }

  /** Fixed newstyle up to transmission: optional extended headers / structured replies / base:allocation. */
  async negotiate(opts: { extended?: boolean; structured?: boolean; meta?: boolean; exportName?: string } = {}): Promise<{ size: number; flags: number }> {
    await this.greet();
    if (opts.extended) {
      const r = await this.option(OPT_EXTENDED_HEADERS);
      if (r[0]!.type !== REP_ACK) throw new Error('server refused extended headers');
      this.extended = true;
    } else if (opts.structured) {
      const r = await this.option(OPT_STRUCTURED_REPLY);
      if (r[0]!.type !== REP_ACK) throw new Error('server refused structured replies');
    }
    if (opts.meta) {
      const r = await this.option(OPT_SET_META_CONTEXT, encodeMetaContextPayload(opts.exportName ?? '', ['base:allocation']));
      if (r[0]!.type !== REP_META_CONTEXT) throw new Error('server selected no meta context');
    }
    const replies = await this.option(OPT_GO, encodeInfoRequestPayload(opts.exportName ?? '', [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]));
    const last = replies[replies.length - 1]!;
    if (last.type !== REP_ACK) throw new Error(`NBD_OPT_GO failed with 0x${last.type.toString(16)}`);
    const info = replies.find((r) => r.payload.length === 12 && r.payload.readUInt16BE(0) === 0)!;
    return { size: info.payload.readUInt32BE(2) * 2 ** 32 + info.payload.readUInt32BE(6), flags: info.payload.readUInt16BE(10) };
  }

  // ---- transmission ----

  sendRequest(type: number, flags: number, cookie: number, offset: number, length: number, payload?: Uint8Array): void {
    const h = Buffer.alloc(requestSize(this.extended));
    encodeRequest(h, 0, { type, flags, cookie, offset, length }, this.extended);
    this.write(payload ? Buffer.concat([h, payload]) : h);
  }
}
