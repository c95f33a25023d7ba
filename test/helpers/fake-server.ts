// A scripted fake NBD server for protocol-violation tests: a net.Server on a private Unix
// socket that runs a script against each connection. Helpers speak the handshake so scripts
// only write the misbehaviour they test.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as P from '../../src/protocol/index.js';

/** One accepted connection, with exact reads. */
export class FakePeer {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  private queued = 0;
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private ended = false;

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.queued += c.length;
      this.serve();
    });
    const end = (): void => {
      this.ended = true;
      if (this.waiter && this.queued < this.waiter.n) this.waiter.reject(new Error('client closed'));
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', () => undefined);
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.serve();
      if (this.waiter && this.ended) reject(new Error('client closed'));
    });
  }

  write(b: Uint8Array): void {
    this.socket.write(b);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private serve(): void {
    const w = this.waiter;
    if (!w || this.queued < w.n) return;
    this.waiter = null;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(w.n)];
    this.queued -= w.n;
    w.resolve(all.subarray(0, w.n));
  }

  /** Fixed newstyle greeting + reads client flags. */
  async greet(handshakeFlags = P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES): Promise<number> {
    const g = Buffer.alloc(18);
    P.encodeNewstyleGreeting(g, 0, handshakeFlags);
    this.write(g);
    return P.decodeClientFlags(await this.read(4));
  }

  async readOption(): Promise<{ option: number; payload: Buffer }> {
    const h = P.decodeOptionHeader(await this.read(16));
    return { option: h.option, payload: h.length ? await this.read(h.length) : Buffer.alloc(0) };
  }

  reply(option: number, type: number, payload?: Uint8Array): void {
    this.write(P.buildOptionReply(option, type, payload));
  }

  /**
   * Answers options until NBD_OPT_GO: structured replies yes (unless `structured` is false),
   * extended headers no, SET_META_CONTEXT gives base:allocation id 1.
   */
  async negotiate(size: number, opts: { structured?: boolean; transmissionFlags?: number } = {}): Promise<void> {
    const structured = opts.structured ?? true;
    const tflags = opts.transmissionFlags ?? (P.FLAG_HAS_FLAGS | P.FLAG_SEND_FLUSH);
    await this.greet();
    for (;;) {
      const { option } = await this.readOption();
      if (option === P.OPT_STRUCTURED_REPLY && structured) {
        this.reply(option, P.REP_ACK);
      } else if (option === P.OPT_SET_META_CONTEXT && structured) {
        this.reply(option, P.REP_META_CONTEXT, P.encodeRepMetaContext(1, 'base:allocation'));
        this.reply(option, P.REP_ACK);
      } else if (option === P.OPT_GO) {
        this.reply(option, P.REP_INFO, P.encodeRepInfo({ type: P.INFO_EXPORT, size, transmissionFlags: tflags }));
        this.reply(option, P.REP_ACK);
        return;
      } else {
        this.reply(option, P.REP_ERR_UNSUP);
      }
    }
  }

  /** Reads one compact request. */
  async readRequest(): Promise<P.Request> {
    return P.decodeRequest(await this.read(28), 0, false);
  }
}

export interface FakeServer {
  uri: string;
  socket: string;
  /** Resolves with the script's outcome for the first connection. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** Serves `script` on each connection; the first connection's result is `done`. */
export async function startFakeServer(script: (peer: FakePeer) => Promise<void>): Promise<FakeServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nbd-fake-'));
  const socket = join(dir, 'fake.sock');
  const peers = new Set<FakePeer>();
  let resolveDone!: () => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  done.catch(() => undefined);
  let first = true;
  const server = net.createServer((sock) => {
    const peer = new FakePeer(sock);
    peers.add(peer);
    const run = script(peer);
    if (first) {
      first = false;
      run.then(resolveDone, rejectDone);
    } else {
      run.catch(() => undefined);
    }
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    uri: `nbd+unix:///?socket=${socket}`,
    socket,
    done,
    stop: async () => {
      for (const p of peers) p.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
