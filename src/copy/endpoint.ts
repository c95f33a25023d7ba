// The one interface the copy engine talks to. One implementation per kind of endpoint
// (local file / block device, NBD, pipe, null); the planner and pipeline never ask which.

/** A run of bytes the source says reads as zeroes (`zero`) or holds data. */
export interface SourceExtent {
  offset: number;
  length: number;
  zero: boolean;
}

export interface Endpoint {
  /** Human name for messages: the file path, URI, 'stdin', 'null:' ... */
  readonly name: string;
  /** Size in bytes; undefined for a stream of unknown length (stdin). */
  readonly size: number | undefined;
  /** Streams (pipes) must be read and written strictly in order, one request at a time. */
  readonly sequential: boolean;
  /** Preferred request granularity and hard limits, in bytes. */
  readonly preferredBlockSize: number;
  readonly minimumBlockSize: number;
  readonly maximumBlockSize: number;
  /** Number of connections currently open (NBD multi-conn); 1 for local endpoints. */
  readonly connections: number;
  /**
   * How many parallel connections this endpoint can serve: 1 for an NBD server without
   * multi-conn and for streams, Infinity for local files and null: (any `conn` index works).
   */
  readonly maxConnections: number;
  /** True when the source can report holes/zeroes without reading. */
  readonly canExtents: boolean;
  /** True when the destination reads as zeroes before the copy (new file, truncated file, null:). */
  readonly isZero: boolean;
  /** True when `zero()` is cheaper than writing zero bytes (NBD WRITE_ZEROES, punch hole). */
  readonly canZero: boolean;
  /** True when writes are thrown away (null:): nothing is worth computing for them. */
  readonly discards: boolean;

  /** Opens more connections (up to `count`) when maxConnections allows; no-op otherwise. */
  setConnections?(count: number): Promise<void>;

  /** Fill `buffer` from `offset`; `conn` selects the connection (0 .. connections-1).
   * Returns the number of bytes read (less than buffer.length only at end of a stream). */
  read(buffer: Uint8Array, offset: number, conn: number): Promise<number>;
  /**
   * Optional form of read() for sources whose data arrives later (NBD): reads `length` bytes
   * into a buffer asked of `take()` only when the data comes in (not called when the read
   * fails first) and resolves to it. The copier takes from its last-in first-out pool then,
   * so a deep queue of reads keeps reusing a few cache-hot buffers.
   */
  readTake?(length: number, offset: number, conn: number, take: () => Buffer): Promise<Buffer>;
  /**
   * Writes `buffer` at `offset`. When the endpoint has `releasesEarly`, it calls `onSent` as
   * soon as `buffer` may be reused (payload handed to the kernel), before the write completes;
   * other endpoints ignore `onSent` and need the buffer until the promise settles.
   */
  write(buffer: Uint8Array, offset: number, conn: number, onSent?: () => void): Promise<void>;
  /** write() calls `onSent` early (NBD: once the payload is in the socket). */
  readonly releasesEarly?: boolean;
  /**
   * Source: a file descriptor whose bytes at an offset are the source's bytes at that offset
   * (regular files, block devices), so a destination may take data from it without a read.
   */
  readonly fileDescriptor?: number;
  /**
   * Source with a fileDescriptor: its bytes [offset, offset+length) to look at without
   * copying them (a memory map), for zero detection on data sent by writeFromFile; undefined
   * when they cannot be mapped. Valid until close().
   */
  mappedBytes?(offset: number, length: number): Buffer | undefined;
  /** Done looking at mappedBytes(offset, length): its pages may leave our address space. */
  releaseMappedBytes?(offset: number, length: number): void;
  /** Destination: true when writeFromFile() moves file bytes without copying them (sendfile). */
  canWriteFromFile?(conn: number): boolean;
  /**
   * Destination: writes `length` bytes of file `fd` from `fileOffset` at `offset`; `onSent`
   * as for write() (once the payload has left, the source may be read again at will).
   */
  writeFromFile?(fd: number, fileOffset: number, length: number, offset: number, conn: number, onSent?: () => void): Promise<void>;
  /** Make [offset, offset+length) read as zeroes. `allocate` asks that it stays allocated (no hole). */
  zero(offset: number, length: number, allocate: boolean, conn: number): Promise<void>;
  /** Extents covering [offset, offset+length) in order; may stop short (callers ask again). */
  extents(offset: number, length: number, conn: number): Promise<SourceExtent[]>;
  flush(): Promise<void>;
  /** Destination of a stream of unknown length: the copy ended after `size` bytes. */
  setFinalSize?(size: number): Promise<void>;
  /** Releases everything (fds, sockets, subprocesses). Safe to call more than once. */
  close(): Promise<void>;
}

/** What a destination needs to know about the source when it is opened. */
export interface DestinationHints {
  /** Source size, or undefined when the source is a stream of unknown length. */
  sourceSize: number | undefined;
}
