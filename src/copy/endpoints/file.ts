// Local regular file or block device. Random access, any number of parallel requests;
// holes come from SEEK_DATA/SEEK_HOLE, zeroing from fallocate with write fallbacks.
import fs from 'node:fs';
import { NbdError } from '../../protocol/errors.js';
import type { Endpoint, FileSource, SourceExtent } from '../endpoint.js';
import { readFully, writeFullySync, fsyncFd } from '../io.js';
import { zeroBuffer } from '../zero-buffer.js';
import { wrapError } from '../errors.js';
import { seekData, seekHole, isSeekUnsupported } from '../../sys/seek.js';
import { allocateRange, punchHole, zeroRange, FallocateError } from '../../sys/fallocate.js';
import { settleAndDrop, startWriteback } from '../../sys/pagecache.js';
import { preadCached } from '../../sys/pread-cached.js';
import { mapFile, type FileMap } from '../../sys/mmap.js';
import { DirtyRanges } from './dirty-ranges.js';

/** Extents asked in one call are capped so one huge fragmented file cannot build a giant array. */
const MAX_EXTENTS_PER_CALL = 4096;
/** Written bytes allowed to sit in the page cache before we wait for them and drop them. */
const DIRTY_WINDOW = 64 * 1024 * 1024;
/** Largest range waited for and dropped at once (a multiple of the usual request sizes). */
const SETTLE_CHUNK = 8 * 1024 * 1024;
/** New bytes in a range before we start its writeback (one sync_file_range call per MiB). */
const WRITEBACK_KICK = 1024 * 1024;

export interface FileEndpointInit {
  name: string;
  fd: number;
  size: number;
  blockDevice: boolean;
  /** The file was created or truncated by us: it reads as zeroes everywhere. */
  isZero: boolean;
  /** A regular file destination grows as needed, so it has no size limit to check. */
  growable?: boolean;
}

/**
 * Size of the pieces a source file is memory-mapped in for zero detection: a Buffer cannot
 * span more than 4 GiB, and the maps stay until close (address space is plentiful).
 */
const MAP_WINDOW = 256 * 1024 * 1024;

export class FileEndpoint implements Endpoint {
  readonly name: string;
  readonly size: number | undefined;
  /** Bytes in the file when opened (for extents); `size` is undefined when growable. */
  private readonly fileSize: number;
  readonly opsName = 'file_ops';
  readonly sequential = false;
  readonly local = true;
  readonly preferredBlockSize = 4096;
  readonly minimumBlockSize = 1;
  readonly maximumBlockSize = 0xffffffff;
  readonly connections = 1;
  readonly maxConnections = Infinity;
  readonly canExtents: boolean;
  readonly isZero: boolean;
  readonly canZero = true;
  /** Destinations may take our bytes straight from the descriptor (sendfile). */
  readonly fileSource: FileSource;
  private readonly fd: number;
  private closed = false;
  /** fallocate modes this filesystem refused; we stop trying them. */
  private noPunch = false;
  private noZeroRange = false;
  private noAllocate = false;
  private seekBroken = false;
  /** Cleared when preadv2(RWF_NOWAIT) is unsupported here: every read goes to the thread pool. */
  private readCached = true;
  /** Ranges written and sent to writeback, not yet known to be on disk and out of the cache. */
  private readonly dirty = new DirtyRanges(SETTLE_CHUNK, WRITEBACK_KICK);
  private pageCacheControl = true;
  /** The source file mapped read-only in MAP_WINDOW pieces, on first use (null: refused). */
  private readonly maps = new Map<number, FileMap | null>();
  private readonly blockDevice: boolean;

  constructor(init: FileEndpointInit) {
    this.name = init.name;
    this.fd = init.fd;
    this.fileSource = {
      fd: init.fd,
      mappedBytes: (offset, length) => this.mappedBytes(offset, length),
      releaseMappedBytes: (offset, length) => this.releaseMappedBytes(offset, length),
    };
    this.fileSize = init.size;
    this.size = init.growable === true ? undefined : init.size;
    this.isZero = init.isZero;
    this.canExtents = !init.blockDevice;
    this.blockDevice = init.blockDevice === true;
  }

  private mappedBytes(offset: number, length: number): Buffer | undefined {
    // Regular files of known size only: a device or a file still being written could end
    // sooner than the map. A request across two windows is simply read instead.
    if (this.blockDevice || this.size === undefined || this.closed || offset + length > this.size) return undefined;
    // Touching mapped pages past the end of a file that shrank raises SIGBUS, which kills the
    // process: look at the size first (the scan follows at once), and let a shrunken file
    // take the read path, which reports the short read as an error.
    if (fs.fstatSync(this.fd).size < offset + length) return undefined;
    const index = Math.floor(offset / MAP_WINDOW);
    if (Math.floor((offset + length - 1) / MAP_WINDOW) !== index) return undefined;
    let map = this.maps.get(index);
    if (map === undefined) {
      const start = index * MAP_WINDOW;
      map = mapFile(this.fd, start, Math.min(MAP_WINDOW, this.size - start)) ?? null;
      this.maps.set(index, map);
    }
    if (map === null) return undefined;
    const at = offset - index * MAP_WINDOW;
    return map.bytes.subarray(at, at + length);
  }

  private releaseMappedBytes(offset: number, length: number): void {
    const index = Math.floor(offset / MAP_WINDOW);
    this.maps.get(index)?.drop(offset - index * MAP_WINDOW, length);
  }

  async read(buffer: Uint8Array, offset: number): Promise<number> {
    try {
      // Cached bytes are copied right here; only what the page cache lacks (a cold file)
      // costs a thread-pool round trip.
      let done = 0;
      if (this.readCached) {
        const n = preadCached(this.fd, buffer, offset);
        if (n < 0) this.readCached = false;
        else done = n;
        if (done === buffer.length) return done;
      }
      if (done === 0) return await readFully(this.fd, buffer, offset);
      return done + await readFully(this.fd, buffer.subarray(done), offset + done);
    } catch (err) {
      throw wrapError(err, `${this.name}: read at ${offset}`);
    }
  }

  async write(buffer: Uint8Array, offset: number): Promise<void> {
    try {
      // On this thread: a write lands in the page cache (the dirty window below keeps the
      // kernel from throttling us), and a thread-pool job per request costs more CPU than the
      // copy itself.
      writeFullySync(this.fd, buffer, offset);
    } catch (err) {
      throw wrapError(err, `${this.name}: write at ${offset}`);
    }
    if (this.pageCacheControl) await this.limitDirty(offset, buffer.length);
  }

  /**
   * Like libnbd's nbdcopy: start writeback of what we wrote soon, and once more than
   * DIRTY_WINDOW is pending wait for the oldest range and drop it from the cache. The writer
   * that pushes us over the window pays the wait, which is the back-pressure we want.
   * Neighbouring writes are merged (DirtyRanges): writeback starts per WRITEBACK_KICK of new
   * bytes, and the wait-and-drop (two thread-pool calls, for each of which koffi maps a fresh
   * stack) runs per chunk of up to SETTLE_CHUNK, not per request.
   */
  private async limitDirty(offset: number, length: number): Promise<void> {
    const dirty = this.dirty;
    if (dirty.add(offset, length) && !startWriteback(this.fd, dirty.kickOffset, dirty.kickLength)) {
      this.pageCacheControl = false;
      return;
    }
    while (dirty.bytes > DIRTY_WINDOW && dirty.pending) {
      dirty.takeOldest();
      await settleAndDrop(this.fd, dirty.takenOffset, dirty.takenLength);
    }
  }

  async zero(offset: number, length: number, allocate: boolean): Promise<void> {
    if (length === 0) return;
    // Each attempt returns true when it did the job; a filesystem that cannot do a mode
    // says so once and we remember, falling through to the next, cheaper-to-support method.
    if (allocate) {
      if (this.isZero && this.tryFallocate(() => allocateRange(this.fd, offset, length), 'noAllocate')) return;
      if (this.tryFallocate(() => zeroRange(this.fd, offset, length), 'noZeroRange')) return;
    } else {
      if (this.tryFallocate(() => punchHole(this.fd, offset, length), 'noPunch')) return;
      if (this.tryFallocate(() => zeroRange(this.fd, offset, length), 'noZeroRange')) return;
    }
    await this.writeZeroes(offset, length);
  }

  private tryFallocate(call: () => void, flag: 'noPunch' | 'noZeroRange' | 'noAllocate'): boolean {
    if (this[flag]) return false;
    try {
      call();
      return true;
    } catch (err) {
      if (err instanceof FallocateError && err.unsupported) {
        this[flag] = true;
        return false;
      }
      throw wrapError(err, `${this.name}: fallocate`);
    }
  }

  private async writeZeroes(offset: number, length: number): Promise<void> {
    const zeroes = zeroBuffer(0);
    for (let done = 0; done < length; ) {
      const n = Math.min(zeroes.length, length - done);
      await this.write(zeroes.subarray(0, n), offset + done);
      done += n;
    }
  }

  async extents(offset: number, length: number): Promise<SourceExtent[]> {
    const end = Math.min(offset + length, this.fileSize);
    if (this.seekBroken || offset >= end) return [{ offset, length: end - offset, zero: false }];
    const out: SourceExtent[] = [];
    try {
      let pos = offset;
      while (pos < end && out.length < MAX_EXTENTS_PER_CALL) {
        const data = seekData(this.fd, pos);
        // No data to the end: a hole, unless the file shrank under us (then those "zeroes"
        // are bytes we can no longer read, and copying zeroes would be a silent lie).
        if (data === undefined) this.checkNotShrunk(end);
        const dataStart = data === undefined ? end : Math.min(data, end);
        if (dataStart > pos) {
          out.push({ offset: pos, length: dataStart - pos, zero: true });
          pos = dataStart;
          if (pos >= end) break;
        }
        const hole = seekHole(this.fd, pos);
        const dataEnd = hole === undefined ? end : Math.min(hole, end);
        out.push({ offset: pos, length: dataEnd - pos, zero: false });
        pos = dataEnd;
      }
    } catch (err) {
      if (err instanceof NbdError) throw err;
      if (!isSeekUnsupported(err)) throw wrapError(err, `${this.name}: lseek`);
      this.seekBroken = true;
      return [{ offset, length: end - offset, zero: false }];
    }
    return out;
  }

  private checkNotShrunk(end: number): void {
    const now = fs.fstatSync(this.fd).size;
    if (now < end) throw new NbdError('EIO', `${this.name}: the file shrank to ${now} bytes during the copy (it had ${this.fileSize})`);
  }

  async flush(): Promise<void> {
    try {
      await fsyncFd(this.fd);
    } catch (err) {
      throw wrapError(err, `${this.name}: fsync`);
    }
  }

  async setFinalSize(size: number): Promise<void> {
    try {
      fs.ftruncateSync(this.fd, size);
    } catch (err) {
      throw wrapError(err, `${this.name}: truncate`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const map of this.maps.values()) map?.unmap();
    this.maps.clear();
    fs.closeSync(this.fd);
  }
}
