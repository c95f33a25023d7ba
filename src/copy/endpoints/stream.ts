// stdin / stdout / FIFOs / character devices: strictly sequential, no seeking, no holes.
// A stream source has no known size: the copy runs until end of file.
import fs from 'node:fs';
import type { Endpoint, SourceExtent } from '../endpoint.js';
import { readFully, writeFully } from '../io.js';
import { zeroBuffer } from '../zero-buffer.js';
import { wrapError } from '../errors.js';

export class StreamEndpoint implements Endpoint {
  readonly size = undefined;
  readonly sequential = true;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = 1;
  readonly canExtents = false;
  readonly isZero = false;
  readonly canZero = false;
  readonly discards = false;
  private closed = false;

  /** `ownsFd` is false for stdin/stdout, which stay open for the process. */
  constructor(readonly name: string, private readonly fd: number, private readonly ownsFd: boolean) {}

  async read(buffer: Uint8Array): Promise<number> {
    try {
      return await readFully(this.fd, buffer, null);
    } catch (err) {
      throw wrapError(err, `${this.name}: read`);
    }
  }

  async write(buffer: Uint8Array): Promise<void> {
    try {
      await writeFully(this.fd, buffer, null);
    } catch (err) {
      throw wrapError(err, `${this.name}: write`);
    }
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
