// A local file (or block device) as the disk. Holes come from SEEK_DATA/SEEK_HOLE, trim and
// zero punch holes with fallocate. Durability: FLUSH, and every request with FUA, is answered
// only after fdatasync returned; a failed sync fails the request (the client then gets an
// error reply, never a success).
import { promises as fsp, constants as fsc } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { STATE_HOLE, STATE_ZERO } from '../../protocol/constants.js';
import { NbdError, type ErrnoCode } from '../../protocol/errors.js';
import { isSeekUnsupported, seekData, seekEnd, seekHole } from '../../sys/seek.js';
import { FallocateError, punchHole, zeroRange } from '../../sys/fallocate.js';
import type { Backend, Extent, ZeroOptions } from './types.js';

const ZERO_CHUNK = 1024 * 1024;

export interface FileBackendOptions {
  /**
   * Replaces fdatasync (a test seam: make the sync fail, or record when it ran). It is given
   * the real one so a recorder can still sync.
   */
  datasync?: (sync: () => Promise<void>) => Promise<void>;
}

export class FileBackend implements Backend {
  readonly kind = 'file';
  readonly canTrim = true;
  readonly canZero = true;
  readonly canFastZero = true;
  readonly canFlush = true;
  readonly canCache = true;
  readonly multiConn = true;
  readonly sparse = true;

  private seekWorks = true;
  private punchWorks = true;
  private zeroRangeWorks = true;
  private zeroes: Buffer | undefined;
  private syncFailed: NbdError | undefined;

  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    readonly writable: boolean,
    readonly path: string,
    private readonly options: FileBackendOptions,
  ) {}

  static async open(path: string, readOnly = false, options: FileBackendOptions = {}): Promise<FileBackend> {
    let handle: FileHandle;
    let writable = !readOnly;
    try {
      handle = await fsp.open(path, readOnly ? fsc.O_RDONLY : fsc.O_RDWR);
    } catch (err) {
      // A file we may only read is still worth serving, read-only.
      if (!readOnly && (err as NodeJS.ErrnoException).code === 'EACCES') {
        handle = await fsp.open(path, fsc.O_RDONLY);
        writable = false;
      } else {
        throw new NbdError(errnoCode(err), `cannot open ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    const st = await handle.stat();
    const size = st.isBlockDevice() ? seekEnd(handle.fd) : st.size;
    return new FileBackend(handle, size, writable, path, options);
  }

  async read(into: Buffer, offset: number): Promise<void> {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await this.handle.read(into, done, into.length - done, offset + done);
      if (bytesRead === 0) {
        // The file shrank under us: what is past its end reads as zeroes.
        into.fill(0, done);
        return;
      }
      done += bytesRead;
    }
  }

  async write(data: Buffer, offset: number, fua: boolean): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
    if (fua) await this.sync();
  }

  async trim(offset: number, length: number, fua: boolean): Promise<void> {
    // Trim is advisory: a filesystem that cannot punch holes simply keeps the data.
    if (this.punchWorks) {
      try {
        punchHole(this.handle.fd, offset, length);
      } catch (err) {
        if (err instanceof FallocateError && err.unsupported) this.punchWorks = false;
        else throw sysError(err, 'trim');
      }
    }
    if (fua) await this.sync();
  }

  async zero(offset: number, length: number, options: ZeroOptions): Promise<void> {
    if (this.tryFastZero(offset, length, options.noHole)) {
      if (options.fua) await this.sync();
      return;
    }
    if (options.fast) throw new NbdError('ENOTSUP', 'this file cannot be zeroed faster than writing');
    this.zeroes ??= Buffer.alloc(ZERO_CHUNK);
    for (let done = 0; done < length;) {
      const n = Math.min(ZERO_CHUNK, length - done);
      await this.write(this.zeroes.subarray(0, n), offset + done, false);
      done += n;
    }
    if (options.fua) await this.sync();
  }

  /** True when zeroing may be attempted without writing data; the `fast` check uses it. */
  get zeroIsFast(): boolean {
    return this.punchWorks || this.zeroRangeWorks;
  }

  async flush(): Promise<void> {
    await this.sync();
  }

  cache(): void {}

  /** Stable storage for everything written so far; throws (EIO, ENOSPC) when the disk says no. */
  private async sync(): Promise<void> {
    // After a failed fdatasync the kernel may have dropped the dirty pages it could not write,
    // so a later sync that succeeds proves nothing about them: every later one fails too.
    if (this.syncFailed) throw new NbdError(this.syncFailed.code, `an earlier fdatasync failed (${this.syncFailed.message}); data written before it may be lost`);
    const real = (): Promise<void> => this.handle.datasync();
    try {
      await (this.options.datasync ? this.options.datasync(real) : real());
    } catch (err) {
      this.syncFailed = sysError(err, 'fdatasync');
      throw this.syncFailed;
    }
  }

  extents(offset: number, length: number): Extent[] {
    const end = offset + length;
    if (!this.seekWorks) return [{ length, flags: 0 }];
    const fd = this.handle.fd;
    const out: Extent[] = [];
    let pos = offset;
    try {
      while (pos < end && out.length < 4096) {
        const data = seekData(fd, pos);
        const dataStart = data === undefined ? end : Math.min(data, end);
        if (dataStart > pos) {
          out.push({ length: dataStart - pos, flags: STATE_HOLE | STATE_ZERO });
          pos = dataStart;
          if (pos >= end) break;
        }
        const hole = seekHole(fd, pos);
        const dataEnd = hole === undefined ? end : Math.min(hole, end);
        out.push({ length: dataEnd - pos, flags: 0 });
        pos = dataEnd;
      }
    } catch (err) {
      if (!isSeekUnsupported(err)) throw sysError(err, 'block status');
      this.seekWorks = false;
      if (pos < end) out.push({ length: end - pos, flags: 0 });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private tryFastZero(offset: number, length: number, noHole: boolean): boolean {
    const fd = this.handle.fd;
    if (!noHole && this.punchWorks) {
      try {
        punchHole(fd, offset, length);
        return true;
      } catch (err) {
        if (!(err instanceof FallocateError && err.unsupported)) throw sysError(err, 'zero');
        this.punchWorks = false;
      }
    }
    if (this.zeroRangeWorks) {
      try {
        zeroRange(fd, offset, length);
        return true;
      } catch (err) {
        if (!(err instanceof FallocateError && err.unsupported)) throw sysError(err, 'zero');
        this.zeroRangeWorks = false;
      }
    }
    return false;
  }
}

function errnoCode(err: unknown): ErrnoCode {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR' || code === 'EPERM') return code;
  return 'EIO';
}

function sysError(err: unknown, what: string): NbdError {
  if (err instanceof NbdError) return err;
  // Node's fs errors carry negative errnos and a code; the FFI's carry positive errnos.
  const { errno, code: name } = err as { errno?: number; code?: string };
  const n = Math.abs(errno ?? 0);
  // EDQUOT and EFBIG read as "no space" to the client, as the protocol asks.
  const code: ErrnoCode = n === 28 || n === 122 || n === 27 || name === 'ENOSPC' || name === 'EDQUOT' || name === 'EFBIG' ? 'ENOSPC' : 'EIO';
  return new NbdError(code, `${what}: ${(err as Error).message}`, { cause: err });
}
