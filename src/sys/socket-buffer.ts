// Socket send-buffer size, which Node's net module cannot set (the one home of SO_SNDBUF for
// NBD sockets and stdout sockets alike). Our WRITE requests carry
// 256 KiB payloads, more than a Unix socket's default send buffer (about 208 KiB): every
// write then stalls half-sent until the server drains it, costing a wake-up on both sides.
import { loadLibc } from './libc.js';

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
/** Like SO_SNDBUF but past the net.core.wmem_max limit; needs CAP_NET_ADMIN. */
const SO_SNDBUFFORCE = 32;

type SetSockOpt = (fd: number, level: number, name: number, value: Int32Array, length: number) => number;
type GetSockOpt = (fd: number, level: number, name: number, value: Int32Array, length: Uint32Array) => number;
let setsockopt: SetSockOpt | undefined;
let getsockopt: GetSockOpt | undefined;

/**
 * Asks for a send buffer of `bytes` on socket `fd`: beyond the system limit when we are
 * allowed to, else up to it. Best effort: a refusal leaves the socket as it was.
 */
export function setSendBufferSize(fd: number, bytes: number): void {
  setsockopt ??= loadLibc().func('int setsockopt(int, int, int, const int *, uint32_t)') as SetSockOpt;
  const value = Int32Array.of(bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, value, 4) !== 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, 4);
}

/** The send buffer the kernel gave `fd` (Linux reports twice the size asked, for overhead). */
export function getSendBufferSize(fd: number): number {
  getsockopt ??= loadLibc().func('int getsockopt(int, int, int, _Out_ int *, _Inout_ uint32_t *)') as GetSockOpt;
  const value = new Int32Array(1);
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, value, Uint32Array.of(4)) !== 0) return -1;
  return value[0]!;
}

/**
 * Asks for a send buffer of at least `bytes` (plain SO_SNDBUF: the kernel doubles it and caps
 * it at net.core.wmem_max) when `fd` is a socket whose buffer is smaller. Returns the size
 * afterwards, or undefined when `fd` is not a socket or the FFI is unavailable.
 */
export function growSocketSendBuffer(fd: number, bytes: number): number | undefined {
  try {
    const now = getSendBufferSize(fd);
    if (now < 0) return undefined;
    if (now >= bytes) return now;
    setsockopt ??= loadLibc().func('int setsockopt(int, int, int, const int *, uint32_t)') as SetSockOpt;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, Int32Array.of(bytes), 4);
    const after = getSendBufferSize(fd);
    return after < 0 ? now : after;
  } catch {
    return undefined;
  }
}
