// The raw-socket half of NbdClient.pwriteFromFile: a WRITE request header with send(2), its
// payload with sendfile(2) straight from the file's page cache, on the descriptor under
// Node's socket. Only the client decides when this is allowed (nothing queued in the stream,
// so these bytes go out right after what Node already wrote); this file only moves bytes
// and says how many moved.
import { readSync } from 'node:fs';
import { NbdError } from '../protocol/errors.js';
import {
  SendError, WOULD_BLOCK, isNonBlocking, sendFileNow, sendNow, sendfileAvailable, unsentBytes,
} from '../sys/sendfile.js';
import { getSendBufferSize } from '../sys/socket-buffer.js';

/** Set to 1 to turn the sendfile path off (tests of the fallback, A/B measurements). */
const DISABLE_ENV = 'NBD_TOOLKIT_NO_SENDFILE';
/** Kernel bookkeeping per request beyond its bytes (skb overhead), kept free in the buffer. */
const SEND_SLACK = 64 * 1024;
/** sendfile errnos meaning "this file cannot be spliced": copy through user space instead. */
const UNSUPPORTED = new Set([22 /* EINVAL */, 38 /* ENOSYS */, 95 /* EOPNOTSUPP */]);

/** Descriptor of a socket Node opened for us (net.Socket's handle); undefined for others. */
function handleFd(stream: unknown): number | undefined {
  const fd = (stream as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The file ran out before the payload did: the request on the wire cannot be completed. */
export class FileEndedError extends NbdError {
  constructor(position: number, missing: number) {
    super('EIO', `pwrite from file: the file ends at offset ${position}, ${missing} bytes short of the request`);
  }
}

export class FileSender {
  /** Payload bytes that went out by sendfile, and those copied through user space. */
  sendfileBytes = 0;
  copiedBytes = 0;
  /** Cleared when the source cannot be spliced; every payload is then copied. */
  enabled = true;

  private constructor(private readonly fd: number, private readonly sendBuffer: number) {}

  /**
   * A sender for `stream`, or undefined when it is not a plain non-blocking socket of ours
   * (TLS layers, pipes, streams given to us) or the FFI cannot load.
   */
  static forStream(stream: unknown): FileSender | undefined {
    if (process.env[DISABLE_ENV] === '1') return undefined;
    const fd = handleFd(stream);
    if (fd === undefined || !sendfileAvailable()) return undefined;
    const sendBuffer = getSendBufferSize(fd);
    // Not a socket (ENOTSOCK), or a blocking one that sendfile would wait on.
    if (sendBuffer <= 0 || !isNonBlocking(fd)) return undefined;
    return new FileSender(fd, sendBuffer);
  }

  /**
   * Sends `header` then `length` bytes of `fileFd` from `fileOffset`, as far as the socket
   * takes them now. Returns the bytes sent of header + payload together, or -1 when nothing
   * was sent because the socket has no room for the whole request yet (the peer has not read
   * what we sent before: its replies will tell us when to try again). A short return leaves
   * the rest to the caller (through Node's stream). Throws FileEndedError when the file is
   * shorter than the request and SendError for socket or file errors.
   */
  send(header: Uint8Array, headerLength: number, fileFd: number, fileOffset: number, length: number): number {
    const queued = unsentBytes(this.fd);
    if (queued > 0 && queued + headerLength + length + SEND_SLACK > this.sendBuffer) return -1;
    const h = sendNow(this.fd, header, headerLength);
    if (h === WOULD_BLOCK) return -1;
    if (h < headerLength) return h;
    let done = 0;
    while (done < length) {
      let n: number;
      try {
        n = sendFileNow(this.fd, fileFd, fileOffset + done, length - done);
      } catch (err) {
        if (done === 0 && err instanceof SendError && UNSUPPORTED.has(err.errno)) {
          this.enabled = false;
          break;
        }
        throw err;
      }
      if (n === WOULD_BLOCK) break;
      if (n === 0) throw new FileEndedError(fileOffset + done, length - done);
      done += n;
    }
    this.sendfileBytes += done;
    return headerLength + done;
  }
}

/**
 * Reads exactly `length` bytes of `fd` from `position` into a new buffer, on this thread (the
 * copy path of pwriteFromFile). A short file or a read error is an NbdError.
 */
export function readFileRange(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  try {
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, position + done);
      if (n === 0) throw new FileEndedError(position + done, length - done);
      done += n;
    }
  } catch (err) {
    if (err instanceof NbdError) throw err;
    throw new NbdError('EIO', `pwrite from file: read at offset ${position + done}: ${(err as Error).message}`, { cause: err });
  }
  return buf;
}
