// Reusable reply buffers. Sizes round up to 4 KiB so a stream of equal requests (the usual
// case: nbdcopy reads 256 KiB at a time) reuses exactly-sized buffers. A buffer goes back to
// the pool once the socket has taken its bytes (the write callback), so steady streaming
// allocates nothing and the garbage collector stays idle.
const GRANULE = 4096;
const MAX_POOLED_SIZE = 64 * 1024 * 1024;
/** Enough for 4 connections x 64 requests in flight of 1 MiB each. */
const MAX_RETAINED_BYTES = 256 * 1024 * 1024;

export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private retained = 0;

  /** A buffer of at least `size` bytes (its length is `size` rounded up to 4 KiB). */
  get(size: number): Buffer {
    const rounded = Math.ceil(Math.max(size, 1) / GRANULE) * GRANULE;
    if (rounded > MAX_POOLED_SIZE) return Buffer.allocUnsafeSlow(size);
    const buf = this.free.get(rounded)?.pop();
    if (buf) {
      this.retained -= buf.length;
      return buf;
    }
    // allocUnsafeSlow: never carved from Node's shared slab, so it is 8-byte aligned and ours alone.
    return Buffer.allocUnsafeSlow(rounded);
  }

  release(buf: Buffer): void {
    const len = buf.length;
    if (len % GRANULE !== 0 || len > MAX_POOLED_SIZE || this.retained + len > MAX_RETAINED_BYTES) return;
    let list = this.free.get(len);
    if (!list) {
      list = [];
      this.free.set(len, list);
    }
    list.push(buf);
    this.retained += len;
  }

  /** Drops every pooled buffer (a long-lived process after a burst of big requests). */
  clear(): void {
    this.free.clear();
    this.retained = 0;
  }
}

/** One pool per process: connections to the same server share warm buffers. */
export const sharedPool = new BufferPool();
