// A disk that reads as zeroes and forgets every write: a sink for benchmarks and copy tests.
import { STATE_HOLE, STATE_ZERO } from '../../protocol/constants.js';
import type { Backend, Extent } from './types.js';

export class NullBackend implements Backend {
  readonly kind = 'null';
  readonly writable = true;
  readonly canTrim = true;
  readonly canZero = true;
  readonly canFastZero = true;
  readonly canFlush = true;
  readonly canCache = true;
  readonly multiConn = true;
  readonly sparse = true;

  constructor(readonly size: number) {}

  read(into: Buffer): void {
    into.fill(0);
  }
  write(): void {}
  zero(): void {}
  trim(): void {}
  flush(): void {}
  cache(): void {}
  close(): void {}

  extents(_offset: number, length: number): Extent[] {
    return [{ length, flags: STATE_HOLE | STATE_ZERO }];
  }
}
