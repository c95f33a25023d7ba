// Copy buffers, reused last-in first-out: the buffer handed out next is the one just given
// back, which the socket or disk copy has only just read, so it is still in the CPU cache.
// Lanes owning one buffer each for their whole life would cycle through lanes x requestSize
// bytes (16 MiB per connection by default) and every copy into them would miss the cache.

export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly bufferSize: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}
