// Bytes a lane may have read but not yet handed to one destination connection's socket.
// Reading further ahead than the socket drains only parks data in user space, where it
// falls out of the cache before it is sent; a small window keeps each buffer's read and its
// send close together while the NBD requests in flight (sent, awaiting replies) stay as
// many as -R allows.

interface Waiter {
  bytes: number;
  resolve: () => void;
}

export class SendWindow {
  private used = 0;
  private waiters: Waiter[] = [];
  private head = 0;

  constructor(readonly limit: number) {}

  /** Resolves when `bytes` fit; undefined when they fit now (no promise on the fast path). */
  acquire(bytes: number): Promise<void> | undefined {
    // An empty window always admits, so a request bigger than the limit cannot wait forever.
    if (this.head === this.waiters.length && (this.used === 0 || this.used + bytes <= this.limit)) {
      this.used += bytes;
      return undefined;
    }
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    this.used -= bytes;
    while (this.head < this.waiters.length) {
      const w = this.waiters[this.head]!;
      if (this.used !== 0 && this.used + w.bytes > this.limit) break;
      this.waiters[this.head++] = undefined as unknown as Waiter;
      this.used += w.bytes;
      w.resolve();
    }
    if (this.head === this.waiters.length && this.head > 0) {
      this.waiters = [];
      this.head = 0;
    }
  }

  /** Wakes every waiter (the copy is stopping); they find the run failed and leave. */
  openAll(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (let i = this.head; i < waiting.length; i++) waiting[i]!.resolve();
    this.head = 0;
  }
}
