// Small wrappers over fs.read / fs.write that loop over short transfers. readFully takes a
// position (files, devices) or null (streams) and retries EAGAIN on non-blocking pipes.
import fs from 'node:fs';

function readOnce(fd: number, buf: Uint8Array, off: number, len: number, pos: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function isAgain(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

/** Reads until `buf` is full or end of file; returns the bytes read. `pos` null = stream. */
export async function readFully(fd: number, buf: Uint8Array, pos: number | null): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    let n: number;
    try {
      n = await readOnce(fd, buf, done, buf.length - done, pos === null ? null : pos + done);
    } catch (err) {
      if (isAgain(err)) { await pause(1); continue; }
      throw err;
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/**
 * Writes all of `buf` at `pos` on the calling thread. For regular files whose writes land
 * in the page cache this is cheaper than a thread-pool job per request (see FileEndpoint).
 */
export function writeFullySync(fd: number, buf: Uint8Array, pos: number): void {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done, pos + done);
}
