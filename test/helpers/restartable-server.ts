// Servers that go away mid-test, for the retry tests: nbdkit (or our nbdserve) killed
// (SIGKILL, as a crash) and started again on the same Unix socket, and a proxy that cuts each
// connection after a few MiB of replies, and one that hangs up on the first connections. All
// are reaped by stop() or close().
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { canConnectUnix } from './servers.js';
import { REPO } from './build.js';

export class RestartableServer {
  private child: ChildProcess | undefined;
  private stderr = '';
  restarts = 0;

  /**
   * `args` are nbdkit's after `-f -U SOCKET` (filters, plugin, parameters), or with
   * `nbdserve`, our server's after `-U SOCKET` (backend and its parameters).
   */
  constructor(readonly socket: string, private readonly args: string[], private readonly program: 'nbdkit' | 'nbdserve' = 'nbdkit') {}

  get uri(): string {
    return `nbd+unix:///?socket=${this.socket}`;
  }

  async start(): Promise<void> {
    rmSync(this.socket, { force: true });
    this.stderr = '';
    const child = this.program === 'nbdkit'
      ? spawn('nbdkit', ['-f', '--exit-with-parent', '-U', this.socket, ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(join(REPO, 'bin', 'nbdserve'), ['-U', this.socket, ...this.args], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (d: Buffer) => {
      if (this.stderr.length < 65536) this.stderr += d.toString();
    });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!(await canConnectUnix(this.socket))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nbdkit exited early: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`nbdkit did not start: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** SIGKILL, as a crash: no reply to anything in flight. Resolves once it is reaped. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
    this.restarts++;
  }

  stop(): Promise<void> {
    return this.kill();
  }
}

/**
 * Kills `server` `times` times at random moments, each 0 to `spreadMs` ms after the previous
 * restart, leaving it down `downMs` ms each time. Resolves after the last restart.
 */
export async function crashRepeatedly(
  server: RestartableServer, times: number, spreadMs: number, downMs: number, random: () => number,
): Promise<void> {
  for (let i = 0; i < times; i++) {
    await new Promise((r) => setTimeout(r, random() * spreadMs));
    await server.kill();
    await new Promise((r) => setTimeout(r, downMs));
    await server.start();
    server.restarts++;
  }
}

export interface CuttingProxy {
  /** Connections cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

/**
 * Listens on `socket` and forwards to `target`, cutting each connection once `everyBytes`
 * bytes of replies have passed, until `maxCuts` connections were cut (later ones are left
 * alone, so a test always ends).
 */
export async function startCuttingProxy(target: string, socket: string, everyBytes: number, maxCuts: number): Promise<CuttingProxy> {
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    sockets.add(client);
    sockets.add(upstream);
    let passed = 0;
    let cut = false;
    const close = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      passed += d.length;
      if (cut) return;
      if (passed > everyBytes && cuts < maxCuts) {
        cuts++;
        cut = true;
        // Part of this chunk gets through: the cut lands in the middle of a reply.
        client.write(d.subarray(0, Math.floor(d.length / 2)), close);
        return;
      }
      client.write(d);
    });
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', close);
    }
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    get cuts() {
      return cuts;
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

export interface HangUpProxy {
  /** Connections hung up on so far. */
  readonly hungUp: number;
  close(): Promise<void>;
}

/**
 * Listens on `socket` and hangs up on the first `count` connections as soon as they arrive
 * (as a server restarting during the handshake does), then forwards later ones to `target`.
 */
export async function startHangUpProxy(target: string, socket: string, count: number): Promise<HangUpProxy> {
  let hungUp = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    if (hungUp < count) {
      hungUp++;
      client.destroy();
      return;
    }
    const upstream = net.connect(target);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    get hungUp() {
      return hungUp;
    },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
