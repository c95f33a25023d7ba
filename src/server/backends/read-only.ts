// What the disks computed from their offset (pattern, sparse-random) have in common: nothing to
// store, so every client sees the same bytes (multi-conn), writes are refused with EPERM, and
// flush and cache have nothing to do.
import { NbdError } from '../../protocol/errors.js';
import type { Backend, Extent } from './types.js';

export abstract class ReadOnlyBackend implements Backend {
  abstract readonly kind: string;
  abstract readonly sparse: boolean;
  readonly writable = false;
  readonly canTrim = false;
  readonly canZero = false;
  readonly canFastZero = false;
  readonly canFlush = false;
  readonly canCache = true;
  readonly multiConn = true;

  constructor(readonly size: number) {}

  abstract read(into: Buffer, offset: number): void;
  abstract extents(offset: number, length: number): Extent[];

  write(): never { throw this.readOnly(); }
  zero(): never { throw this.readOnly(); }
  trim(): never { throw this.readOnly(); }
  flush(): void {}
  cache(): void {}
  close(): void {}

  private readOnly(): NbdError {
    return new NbdError('EPERM', `the ${this.kind} backend is read-only`);
  }
}
