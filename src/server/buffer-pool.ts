// Reusable reply buffers in power-of-two size classes. A buffer goes back to the pool once
// the socket has taken its bytes (the write callback), so steady streaming allocates nothing.
const MIN_CLASS = 12; // 4 KiB
const MAX_CLASS = 26; // 64 MiB: a 32 MiB read plus its headers fits
const MAX_FREE_PER_CLASS = 16;
const MAX_RETAINED_BYTES = 128 * 1024 * 1024;

export class BufferPool {
  private readonly free: Buffer[][] = [];
  private retained = 0;

  constructor() {
    for (let c = 0; c <= MAX_CLASS; c++) this.free.push([]);
  }

  /** A buffer of at least `size` bytes (its length is the class size, not `size`). */
  get(size: number): Buffer {
    const cls = classOf(size);
    if (cls > MAX_CLASS) return Buffer.allocUnsafeSlow(size);
    const list = this.free[cls]!;
    const buf = list.pop();
    if (buf) {
      this.retained -= buf.length;
      return buf;
    }
    // allocUnsafeSlow: never carved from Node's shared slab, so it is 8-byte aligned and ours alone.
    return Buffer.allocUnsafeSlow(1 << cls);
  }

  release(buf: Buffer): void {
    const len = buf.length;
    if ((len & (len - 1)) !== 0) return;
    const cls = Math.log2(len);
    if (cls < MIN_CLASS || cls > MAX_CLASS) return;
    const list = this.free[cls]!;
    if (list.length >= MAX_FREE_PER_CLASS || this.retained + len > MAX_RETAINED_BYTES) return;
    list.push(buf);
    this.retained += len;
  }
}

function classOf(size: number): number {
  if (size <= 1 << MIN_CLASS) return MIN_CLASS;
  return Math.ceil(Math.log2(size));
}

/** One pool per process: connections to the same server share warm buffers. */
export const sharedPool = new BufferPool();
