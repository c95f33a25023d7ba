// `[ CMD ARGS ]`: run an NBD server with systemd socket activation on a private Unix socket.
// The copy owns this process (not its client), so it can stop it at once when done: a
// socket-activated server never exits by itself when its client leaves.
import { NbdError } from '../../protocol/errors.js';
import { spawnActivatedServer } from '../../client/activation.js';
import { stopChild } from '../../client/children.js';

export interface ServerProcess {
  /** Unix socket the server listens on (already listening before the child starts). */
  readonly socketPath: string;
  /** Rejects when the server exits before `stop()`; used to fail a connect that would hang. */
  readonly exited: Promise<never>;
  /** SIGTERM (SIGKILL after a grace period), reap, remove the socket dir. Idempotent. */
  stop(): Promise<void>;
}

/** `onStderr`: where the server's stderr goes (default: ours). */
export async function startServerProcess(argv: string[], onStderr?: (text: string) => void): Promise<ServerProcess> {
  if (argv.length === 0) throw new NbdError('EINVAL', "empty command in '[ ]'");
  const { child, socketPath, removeDir } = await spawnActivatedServer(argv, 'nbdcopy-', onStderr);
  let stopping = false;
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => {
      if (stopping) return;
      const how = signal !== null ? `killed by ${signal}` : code === 127 ? 'command not found' : `exit status ${code}`;
      reject(new NbdError('ECONNRESET', `server subprocess ended before the copy finished (${how})`));
    });
    child.once('error', (err) => reject(new NbdError('ENOENT', `cannot run ${argv[0]}: ${err.message}`)));
  });
  exited.catch(() => undefined);
  let stopped: Promise<void> | undefined;
  return {
    socketPath,
    exited,
    stop() {
      stopping = true;
      stopped ??= stopChild(child, 2000).finally(removeDir);
      return stopped;
    },
  };
}
