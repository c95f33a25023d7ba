// command=: the upstream server runs as our child with systemd socket activation (a listening
// Unix socket on fd 3, LISTEN_FDS=1, LISTEN_PID its own pid), and dies with us.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NbdError } from '../../../protocol/errors.js';

const running = new Set<ChildProcess>();

/** On exit, whatever way it comes, no child of ours is left behind. */
function killAllOnExit(): void {
  for (const child of running) {
    try {
      child.kill('SIGTERM');
    } catch {
      // already gone
    }
  }
}

export class ActivatedServer {
  private stopping: Promise<void> | undefined;

  private constructor(private readonly child: ChildProcess, readonly socketPath: string, private readonly dir: string) {}

  /** Starts `argv`; connections to socketPath succeed at once (the socket listens before the child runs). */
  static async start(argv: readonly string[]): Promise<ActivatedServer> {
    // Loaded on demand: the FFI (koffi) only for command=.
    const { listenUnix } = await import('../../../sys/socket.js');
    const dir = mkdtempSync(join(tmpdir(), 'nbdserve-upstream-'));
    const socketPath = join(dir, 'sock');
    let fd: number;
    try {
      fd = listenUnix(socketPath);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    let child: ChildProcess;
    try {
      // LISTEN_PID must be the server's own pid: the shell learns it as $$, then execs.
      child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$@"', 'sh', ...argv], {
        stdio: ['ignore', 'ignore', 'inherit', fd],
        env: { ...process.env, LISTEN_FDS: '1', LISTEN_FDNAMES: 'nbd' },
      });
    } finally {
      closeSync(fd);
    }
    if (running.size === 0) process.on('exit', killAllOnExit);
    running.add(child);
    child.once('exit', () => running.delete(child));
    // The shell cannot exec a missing program: it exits 127 at once, before anyone connects.
    const early = await new Promise<number | null | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), 50);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    if (early !== undefined) {
      rmSync(dir, { recursive: true, force: true });
      throw new NbdError('ENOENT', `command=${argv[0]}: the server exited at once (status ${early})`);
    }
    return new ActivatedServer(child, socketPath, dir);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after two seconds; resolves once the child is reaped. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      const done = (): void => {
        rmSync(this.dir, { recursive: true, force: true });
        resolve();
      };
      if (!this.alive) return done();
      const kill = setTimeout(() => this.child.kill('SIGKILL'), 2000);
      this.child.once('exit', () => {
        clearTimeout(kill);
        done();
      });
      this.child.kill('SIGTERM');
    });
    return this.stopping;
  }
}
