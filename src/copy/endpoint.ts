// The one interface the copy engine talks to. One implementation per kind of endpoint
// (local file / block device, NBD, pipe, null); the plan and the strategies never ask which.
// Every range is given as (offset, length), in that order.

/** A run of bytes the source says reads as zeroes (`zero`) or holds data. */
export interface SourceExtent {
  offset: number;
  length: number;
  zero: boolean;
}

/** libnbd's name for the operations table of each kind, as its nbdcopy prints it with -v. */
export type OpsName = 'file_ops' | 'pipe_ops' | 'nbd_ops' | 'null_ops';

/** A run of bytes with the flags a meta context gives it (qemu:dirty-bitmap: 1 = dirty). */
export interface ContextExtent {
  offset: number;
  length: number;
  flags: number;
}

export interface Endpoint {
  /** Human name for messages: the file path, URI, 'stdin', 'null:' ... */
  readonly name: string;
  /** For messages only (`-v`): the copy never decides anything from it. */
  readonly opsName: OpsName;
  /** Size in bytes; undefined for a stream of unknown length (stdin) or a destination without one. */
  readonly size: number | undefined;
  /** Streams (pipes) must be read and written strictly in order, one request at a time. */
  readonly sequential: boolean;
  /**
   * No server on the other end of a socket (files, devices, pipes, null:): each request is a
   * system call or a thread-pool job, so many requests in flight buy nothing.
   */
  readonly local: boolean;
  /** Preferred request granularity and hard limits, in bytes. */
  readonly preferredBlockSize: number;
  readonly minimumBlockSize: number;
  readonly maximumBlockSize: number;
  /** Number of connections currently open (NBD multi-conn); 1 for local endpoints. */
  readonly connections: number;
  /**
   * How many parallel connections this endpoint can serve: 1 for an NBD server without
   * multi-conn and for streams, Infinity when any `conn` index works (files, null:).
   */
  readonly maxConnections: number;
  /** True when the source can report holes/zeroes without reading. */
  readonly canExtents: boolean;
  /** True when the destination reads as zeroes before the copy (a new or truncated file). */
  readonly isZero: boolean;
  /**
   * True when `zero()` is cheaper than writing zero bytes (NBD WRITE_ZEROES, punch hole).
   * False where it is not: a stream writes zeroes out, null: makes every write free.
   */
  readonly canZero: boolean;
  /**
   * write() calls its `onSent` as soon as the buffer may be reused (NBD: once the payload
   * is in the socket), before the write completes.
   */
  readonly releasesEarly?: boolean;
  /** Source only: its bytes live in a file descriptor (regular file, block device). */
  readonly fileSource?: FileSource;
  /** Destination only: it can take bytes straight from a file (sendfile). */
  readonly fileSink?: FileSink;

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
  readTake?(offset: number, length: number, conn: number, take: () => Buffer): Promise<Buffer>;
  /**
   * Writes `buffer` at `offset`. When the endpoint has `releasesEarly`, it calls `onSent` as
   * soon as `buffer` may be reused (payload handed to the kernel), before the write completes;
   * other endpoints ignore `onSent` and need the buffer until the promise settles.
   */
  write(buffer: Uint8Array, offset: number, conn: number, onSent?: () => void): Promise<void>;
  /** Make [offset, offset+length) read as zeroes. `allocate` asks that it stays allocated (no hole). */
  zero(offset: number, length: number, allocate: boolean, conn: number): Promise<void>;
  /** Meta contexts the source negotiated besides base:allocation (NBD), e.g. a dirty bitmap. */
  readonly metaContexts?: readonly string[];
  /**
   * Extents of meta context `context` (one of metaContexts) covering [offset, offset+length)
   * in order, with the context's own flags; may stop short (callers ask again).
   */
  contextExtents?(context: string, offset: number, length: number, conn: number): Promise<ContextExtent[]>;
  /** Extents covering [offset, offset+length) in order; may stop short (callers ask again). */
  extents(offset: number, length: number, conn: number): Promise<SourceExtent[]>;
  flush(): Promise<void>;
  /** Destination of a stream of unknown length: the copy ended after `size` bytes. */
  setFinalSize?(size: number): Promise<void>;
  /** Releases everything (fds, sockets, subprocesses). Safe to call more than once. */
  close(): Promise<void>;
}

/** A source whose bytes at an offset are the bytes of a file descriptor at that offset. */
export interface FileSource {
  readonly fd: number;
  /**
   * Its bytes [offset, offset+length) to look at without copying them (a memory map), for
   * zero detection on data a FileSink sends; undefined when they cannot be mapped. Valid
   * until the endpoint closes.
   */
  mappedBytes(offset: number, length: number): Buffer | undefined;
  /** Done looking at mappedBytes(offset, length): its pages may leave our address space. */
  releaseMappedBytes(offset: number, length: number): void;
}

/** A destination that moves a file's bytes without them entering JavaScript (sendfile). */
export interface FileSink {
  /** False when this connection cannot (TLS, or the system call is missing). */
  canWriteFromFile(conn: number): boolean;
  /**
   * Writes the bytes of file `fd` at [offset, offset+length) to the same offset; `onSent`
   * as for write() (once the payload has left, the source may be read again at will).
   */
  writeFromFile(fd: number, offset: number, length: number, conn: number, onSent?: () => void): Promise<void>;
}

/** What a destination needs to know about the source when it is opened. */
export interface DestinationHints {
  /** Source size, or undefined when the source is a stream of unknown length. */
  sourceSize: number | undefined;
  /**
   * The copy writes into what is already there (a resumed or incremental copy): a file is
   * neither created nor truncated, and must exist.
   */
  keepContents?: boolean;
  /** The destination will be read back after the copy (verification). */
  readBack?: boolean;
}
