// null: — a destination that throws everything away and reads as zeroes. For benchmarks.
import type { Endpoint, SourceExtent } from '../endpoint.js';

export class NullEndpoint implements Endpoint {
  readonly name = 'null:';
  /** Unbounded: any source fits. */
  readonly size = undefined;
  readonly sequential = false;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = Infinity;
  readonly canExtents = true;
  readonly isZero = true;
  readonly canZero = true;
  readonly discards = true;

  async read(buffer: Uint8Array): Promise<number> {
    buffer.fill(0);
    return buffer.length;
  }
  async write(): Promise<void> {}
  async zero(): Promise<void> {}
  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    return [{ offset, length, zero: true }];
  }
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
