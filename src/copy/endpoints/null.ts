// null: — a destination that throws everything away. For benchmarks.
import type { Endpoint, SourceExtent } from '../endpoint.js';

export class NullEndpoint implements Endpoint {
  readonly name = 'null:';
  /** Unbounded: any source fits. */
  readonly size = undefined;
  readonly opsName = 'null_ops';
  readonly sequential = false;
  readonly local = true;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = Infinity;
  readonly canExtents = true;
  /** Nothing written can be read back: there is nothing to zero first. */
  readonly isZero = false;
  /** Writes cost nothing, so zero detection and zero requests would save nothing. */
  readonly canZero = false;

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
