// Hand-driven NBD handshakes over any byte stream (a plain socket, then the TLS stream that
// replaces it after STARTTLS), and a recording Unix-socket server that plays a scripted
// server: what the security tests need to see exactly which bytes crossed the wire.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import {
  CLIENT_FLAGS_SIZE, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, NEWSTYLE_GREETING_SIZE, OPTION_REPLY_HEADER_SIZE,
  buildOption, decodeNewstyleGreeting, decodeOptionReplyHeader, isErrorReply, REP_ACK,
} from '../../src/protocol/index.js';

/** One option reply as it came off the wire. */
export interface WireReply {
  option: number;
  type: number;
  payload: Buffer;
}

/**
 * Exact reads with a timeout and EOF detection over one stream. `detach()` stops listening so
 * a TLS layer can take the stream over; `over()` then continues on the TLS stream.
 */
export class Wire {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  private wake: (() => void) | undefined;
  private readonly listeners: Array<[string, (...args: any[]) => void]>;

  constructor(readonly stream: Duplex) {
    const poke = (): void => this.wake?.();
    const onData = (c: Buffer): void => { this.chunks.push(Buffer.from(c)); this.have += c.length; poke(); };
    const onEnd = (): void => { this.ended = true; poke(); };
    this.listeners = [['data', onData], ['end', onEnd], ['close', onEnd], ['error', onEnd]];
    for (const [event, fn] of this.listeners) stream.on(event, fn);
  }

  static connectUnix(path: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path, allowHalfOpen: true });
      s.once('connect', () => resolve(new Wire(s)));
      s.once('error', reject);
    });
  }

  /** Stops reading `stream` (before a TLS layer takes it); bytes already read are returned. */
  detach(): Buffer {
    for (const [event, fn] of this.listeners) this.stream.off(event, fn);
    this.stream.on('error', () => undefined);
    this.stream.pause();
    return Buffer.concat(this.chunks);
  }

  write(b: Uint8Array): void {
    this.stream.write(b);
  }

  /** Bytes received and not yet read. */
  get pending(): number {
    return this.have;
  }

  async read(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.have < n) {
      if (this.ended) throw new Error(`connection closed after ${this.have} of ${n} bytes`);
      if (!(await this.waitUntil(deadline))) throw new Error(`timed out waiting for ${n} bytes (have ${this.have})`);
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.have -= n;
    return all.subarray(0, n);
  }

  /** True when the peer closes within the timeout. */
  async closedByPeer(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) if (!(await this.waitUntil(deadline))) return false;
    return true;
  }

  private waitUntil(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(false); }, left);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(true); };
    });
  }

  /** Reads the newstyle greeting and answers with fixed newstyle + no zeroes; returns the server's flags. */
  async greet(clientFlags = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES): Promise<number> {
    const flags = decodeNewstyleGreeting(await this.read(NEWSTYLE_GREETING_SIZE));
    const b = Buffer.alloc(CLIENT_FLAGS_SIZE);
    b.writeUInt32BE(clientFlags);
    this.write(b);
    return flags;
  }

  async readOptionReply(): Promise<WireReply> {
    const h = decodeOptionReplyHeader(await this.read(OPTION_REPLY_HEADER_SIZE));
    return { option: h.option, type: h.type, payload: h.length ? await this.read(h.length) : Buffer.alloc(0) };
  }

  /** Sends an option and collects its replies up to the final one (ACK or an error). */
  async option(option: number, payload?: Uint8Array): Promise<WireReply[]> {
    this.write(buildOption(option, payload));
    const out: WireReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      out.push(r);
      if (r.type === REP_ACK || isErrorReply(r.type)) return out;
    }
  }

  destroy(): void {
    this.stream.destroy();
  }
}

/** A scripted server on a private Unix socket that keeps every byte its clients sent. */
export interface RecordingServer {
  socket: string;
  uri: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Everything the first client sent, in order. */
  received(): Buffer;
  /** Resolves when the first connection's script has finished and the client has gone. */
  finished: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Serves `script` on each connection (a Wire over the accepted socket). The script plays the
 * server; whatever the client sends, read by the script or not, is recorded.
 */
export async function startRecordingServer(script: (peer: Wire) => Promise<void>): Promise<RecordingServer> {
  const dir = mkdtempSync(join(tmpdir(), 'wire-'));
  const socket = join(dir, 'sock');
  const sockets = new Set<net.Socket>();
  const recorded: Buffer[] = [];
  let accepted = 0;
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => { resolveFinished = r; });
  const server = net.createServer((s) => {
    const first = accepted === 0;
    accepted++;
    sockets.add(s);
    if (first) s.on('data', (c: Buffer) => recorded.push(Buffer.from(c)));
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => undefined);
    const peer = new Wire(s);
    void script(peer).catch(() => undefined).then(() => gone).then(() => { if (first) resolveFinished(); });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    socket,
    uri: `nbd+unix:///?socket=${socket}`,
    get accepted() { return accepted; },
    received: () => Buffer.concat(recorded),
    finished,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
