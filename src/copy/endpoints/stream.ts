// stdin / stdout / FIFOs / character devices: strictly sequential, no seeking, no holes.
// A stream source has no known size: the copy runs until end of file.
import fs from 'node:fs';
import type { Endpoint, SourceExtent } from '../endpoint.js';
import { zeroBuffer } from '../zero-buffer.js';
import { wrapError } from '../errors.js';
import { UNSUPPORTED, growPipe, readNow, writeNow } from '../../sys/pipe.js';
import { growSocketSendBuffer } from '../../sys/socket-buffer.js';

/**
 * Kernel buffer asked for between us and the process on the other end (a pipe's buffer, a
 * socket's send buffer): more of each write or read moves at once without waiting, with fewer
 * wake-ups on both sides.
 */
const KERNEL_BUFFER = 1024 * 1024;

function readOnce(fd: number, buf: Uint8Array, off: number, len: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeOnce(fd: number, buf: Uint8Array, off: number, len: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, null, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** EAGAIN from the thread pool: the descriptor is non-blocking (O_NONBLOCK set by another process). */
function isAgain(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

export class StreamEndpoint implements Endpoint {
  readonly opsName = 'pipe_ops';
  readonly size = undefined;
  readonly sequential = true;
  readonly local = true;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = 1;
  readonly canExtents = false;
  readonly isZero = false;
  readonly canZero = false;
  private closed = false;
  /** Moves bytes on the event loop thread when they can move without waiting (sys/pipe.ts). */
  private nowait = true;
  private grown = false;

  /** `ownsFd` is false for stdin/stdout, which stay open for the process. */
  constructor(readonly name: string, private readonly fd: number, private readonly ownsFd: boolean) {}

  /** Fills `buffer` unless the stream ends first; returns the bytes read. */
  async read(buffer: Uint8Array): Promise<number> {
    this.grow(false);
    const len = buffer.length;
    let done = 0;
    try {
      while (done < len) {
        if (this.nowait) {
          const n = readNow(this.fd, buffer, done, len - done);
          if (n === 0) break;
          if (n > 0) {
            done += n;
            continue;
          }
          if (n === UNSUPPORTED) this.nowait = false;
        }
        // Nothing there yet: wait for some in the thread pool, not on the event loop.
        let n: number;
        try {
          n = await readOnce(this.fd, buffer, done, len - done);
        } catch (err) {
          if (!isAgain(err)) throw err;
          await pause(1);
          continue;
        }
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw wrapError(err, `${this.name}: read`);
    }
    return done;
  }

  async write(buffer: Uint8Array): Promise<void> {
    this.grow(true);
    const len = buffer.length;
    let done = 0;
    try {
      while (done < len) {
        if (this.nowait) {
          const n = writeNow(this.fd, buffer, done, len - done);
          if (n > 0) {
            done += n;
            continue;
          }
          if (n === UNSUPPORTED) this.nowait = false;
        }
        // No room now: the thread pool waits for the reader (and reports EPIPE and such).
        try {
          done += await writeOnce(this.fd, buffer, done, len - done);
        } catch (err) {
          if (!isAgain(err)) throw err;
          await pause(1);
        }
      }
    } catch (err) {
      throw wrapError(err, `${this.name}: write`);
    }
  }

  /** A bigger kernel buffer, asked for once, when the stream is a pipe or (to write) a socket. */
  private grow(forWriting: boolean): void {
    if (this.grown) return;
    this.grown = true;
    if (growPipe(this.fd, KERNEL_BUFFER) === undefined && forWriting) growSocketSendBuffer(this.fd, KERNEL_BUFFER);
  }

  /** A stream cannot skip: zeroes are written out. */
  async zero(_offset: number, length: number): Promise<void> {
    const zeroes = zeroBuffer(0);
    for (let done = 0; done < length; ) {
      const n = Math.min(zeroes.length, length - done);
      await this.write(zeroes.subarray(0, n));
      done += n;
    }
  }

  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    return [{ offset, length, zero: false }];
  }

  async flush(): Promise<void> {
    // fsync on a pipe is EINVAL; a regular file behind stdout can be synced.
    try {
      fs.fsyncSync(this.fd);
    } catch {
      /* not syncable: nothing to flush */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) fs.closeSync(this.fd);
  }
}
