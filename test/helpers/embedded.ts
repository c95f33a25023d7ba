// Our embedded server for tests: in-process (startEmbedded) or as the nbdserve subprocess
// (spawnNbdserve), each on a private Unix socket in a fresh temp dir and always cleaned up;
// plus RawNbd, a byte-level client built on the protocol codecs for tests that must send what
// a well-behaved client never would.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CLIENT_FLAGS_SIZE, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_NAME,
  NEWSTYLE_GREETING_SIZE, OPTION_REPLY_HEADER_SIZE, OPT_EXTENDED_HEADERS, OPT_GO, OPT_SET_META_CONTEXT,
  OPT_STRUCTURED_REPLY, REP_ACK, REP_META_CONTEXT, buildOption, decodeNewstyleGreeting, decodeOptionReplyHeader,
  encodeInfoRequestPayload, encodeMetaContextPayload, encodeRequest, requestSize,
} from '../../src/protocol/index.js';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server/index.js';
import { NBDSERVE, ensureBuilt } from './build.js';
import type { Teardown } from './teardown.js';
import { spawnSocketServer, type ServerChild } from './servers.js';


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

/** Byte-level NBD connection for tests: exact reads with a timeout, raw writes, EOF detection. */
export class RawNbd {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  private wake: (() => void) | undefined;
  extended = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => { this.chunks.push(c); this.have += c.length; this.wake?.(); });
    socket.on('end', () => { this.ended = true; this.wake?.(); });
    socket.on('close', () => { this.ended = true; this.wake?.(); });
    socket.on('error', () => { this.ended = true; this.wake?.(); });
  }

  static connect(path: string): Promise<RawNbd> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path, allowHalfOpen: true });
      s.once('connect', () => resolve(new RawNbd(s)));
      s.once('error', reject);
    });
  }

  write(buf: Uint8Array): void {
    this.socket.write(buf);
  }

  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.have < n) {
      if (this.ended) throw new Error(`connection closed after ${this.have} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.have})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => { clearTimeout(t); this.wake = undefined; r(); };
      });
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.have -= n;
    return all.subarray(0, n);
  }

  /** Resolves true when the server closes the connection within the timeout. */
  async closedByServer(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => { clearTimeout(t); this.wake = undefined; r(); };
      });
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }

  // ---- handshake ----

  async greet(clientFlags = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES): Promise<number> {
    const flags = decodeNewstyleGreeting(await this.read(NEWSTYLE_GREETING_SIZE));
    const b = Buffer.alloc(CLIENT_FLAGS_SIZE);
    b.writeUInt32BE(clientFlags);
    this.write(b);
    return flags;
  }

  sendOption(option: number, payload?: Uint8Array): void {
    this.write(buildOption(option, payload));
  }

  async readOptionReply(): Promise<{ option: number; type: number; payload: Buffer }> {
    const h = decodeOptionReplyHeader(await this.read(OPTION_REPLY_HEADER_SIZE));
    return { option: h.option, type: h.type, payload: h.length ? await this.read(h.length) : Buffer.alloc(0) };
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(option: number, payload?: Uint8Array): Promise<Array<{ type: number; payload: Buffer }>> {
    this.sendOption(option, payload);
    const out: Array<{ type: number; payload: Buffer }> = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type === REP_ACK || (r.type & 0x80000000) !== 0) return out;
    }
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
