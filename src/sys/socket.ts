// Socket syscalls Node lacks: socketpair(2) for subprocess transports, and a raw listening
// Unix socket for systemd socket activation (a net.Server would unlink the path on close).
import { closeSync } from 'node:fs';
import { NbdError } from '../protocol/errors.js';
import { koffi, lastErrno, loadLibc } from './libc.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SUN_PATH_MAX = 108;

interface SocketCalls {
  socketpair: (domain: number, type: number, protocol: number, sv: Int32Array) => number;
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  listen: (fd: number, backlog: number) => number;
}

let calls: SocketCalls | undefined;

function load(): SocketCalls {
  if (calls) return calls;
  const libc = loadLibc();
  calls = {
    socketpair: libc.func('int socketpair(int, int, int, _Out_ int *sv)') as SocketCalls['socketpair'],
    socket: libc.func('int socket(int, int, int)') as SocketCalls['socket'],
    bind: libc.func('int bind(int, const void *addr, uint32_t len)') as SocketCalls['bind'],
    listen: libc.func('int listen(int, int)') as SocketCalls['listen'],
  };
  return calls;
}

function fail(what: string): NbdError {
  return new NbdError('EIO', `${what}: errno ${lastErrno()}`);
}

/** A connected pair of Unix stream sockets, both close-on-exec. */
export function socketPair(): [number, number] {
  const sv = new Int32Array(2);
  if (load().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) !== 0) throw fail('socketpair');
  return [sv[0]!, sv[1]!];
}

/** Creates, binds and listens on a Unix socket at `path`; returns the close-on-exec fd. */
export function listenUnix(path: string, backlog = 16): number {
  const c = load();
  const pathBytes = Buffer.from(path, 'utf8');
  if (pathBytes.length >= SUN_PATH_MAX) {
    throw new NbdError('EINVAL', `socket path too long (${pathBytes.length} bytes): ${path}`);
  }
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw fail('socket');
  // struct sockaddr_un: sa_family_t (host order u16) then the NUL-terminated path.
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  pathBytes.copy(addr, 2);
  if (c.bind(fd, addr, 2 + pathBytes.length + 1) !== 0) {
    const err = fail(`bind ${path}`);
    closeSync(fd);
    throw err;
  }
  if (c.listen(fd, backlog) !== 0) {
    const err = fail('listen');
    closeSync(fd);
    throw err;
  }
  return fd;
}

export { koffi };
