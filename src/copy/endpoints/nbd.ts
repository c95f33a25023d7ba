// NBD endpoint: one NbdClient per connection. More connections (multi-conn) are opened once
// the copy knows both sides allow it, to a URI or to our own `[ CMD ]` server process.
import { readSync } from 'node:fs';
import type { ContextExtent, Endpoint, FileSink, SourceExtent } from '../endpoint.js';
import type { EndpointSpec } from '../spec.js';
import { NbdError } from '../../protocol/errors.js';
// The client's modules themselves, not its index, which would also load MultiConn and the
// reconnecting client at every start (connect() loads the latter when retries are asked for).
import { connect } from '../../client/connect.js';
import { NbdClient } from '../../client/nbd-client.js';
import type { ReconnectingClient } from '../../client/reconnect.js';
import type { RetryOptions } from '../../client/retry-policy.js';
import type { ExportInfo } from '../../client/types.js';
import type { UriAllowList } from '../../client/uri-allow.js';
import { wrapError } from '../errors.js';
import { zeroBuffer } from '../zero-buffer.js';
import { startServerProcess, type ServerProcess } from './subprocess.js';

/**
 * How to open an NBD side. The allow-lists apply to a URI side (see connect()); nbdcopy passes
 * TOOL_URI_ALLOW_LIST, as libnbd's does.
 */
export interface NbdOpenOptions extends UriAllowList {
  writable: boolean;
  /** Meta contexts to ask for besides base:allocation (a source's dirty bitmap). */
  metaContexts?: readonly string[];
  log?: (line: string) => void;
  /** Reopen lost connections and send their unanswered requests again (see connect()). */
  retry?: RetryOptions;
  /** Where a `[ CMD ]` server's stderr goes (default: ours). */
  serverStderr?: (text: string) => void;
}

/** One connection; with retries, one that reopens itself when lost. */
type Connection = NbdClient | ReconnectingClient;

const BASE_ALLOCATION = 'base:allocation';
const STATE_ZERO = 2;
/** The most connections we ever open to one server, whatever -C says. */
const MAX_MULTI_CONN = 16;
/** Requests queued inside one client; the copier's lanes are the real limit. */
const CLIENT_IN_FLIGHT = 1024;

type NbdSpec = EndpointSpec & { kind: 'uri' | 'command' };

function nameOf(spec: NbdSpec): string {
  return spec.kind === 'uri' ? spec.uri : spec.argv[0]!;
}

const sleep = (ms: number) => new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms));

/**
 * Kernel send buffer of destination connections: room for several whole 256 KiB WRITEs, so a
 * write rarely stalls half-sent.
 */
const DESTINATION_SEND_BUFFER = 4 << 20;

/**
 * Requests sent per socket write while the server has plenty queued: each write wakes the
 * server, and one per request costs CPU on both sides.
 */
const REQUEST_BATCH = 8;

/**
 * One more connection, to the URI or to our server process. With retries, a lost connection
 * is opened again to the same URI or socket (a `[ CMD ]` server is not started again).
 */
async function open(spec: NbdSpec, server: ServerProcess | undefined, o: NbdOpenOptions): Promise<Connection> {
  const { uriAllowTransports, uriAllowTls, uriAllowLocalFile, retry } = o;
  const options = {
    uriAllowTransports, uriAllowTls, uriAllowLocalFile,
    metaContexts: [BASE_ALLOCATION, ...(o.metaContexts ?? [])],
    maxInFlight: CLIENT_IN_FLIGHT,
    requestBatch: REQUEST_BATCH,
    sendBufferSize: o.writable ? DESTINATION_SEND_BUFFER : undefined,
  };
  const target = server === undefined ? (spec.kind === 'uri' ? spec.uri : '') : { unixSocket: server.socketPath };
  const connecting = retry !== undefined && retry.retries > 0 ? connect(target, { ...options, ...retry }) : connect(target, options);
  try {
    if (server === undefined) return await connecting;
    return await Promise.race([connecting, server.exited]);
  } catch (err) {
    // A server that died says more (command not found, exit status) than the refused connect.
    const died = server && (await Promise.race([server.exited.catch((e: unknown) => e), sleep(200)]));
    throw wrapError(died ?? err, nameOf(spec));
  }
}

export async function openNbdEndpoint(spec: NbdSpec, options: NbdOpenOptions): Promise<Endpoint> {
  const server = spec.kind === 'command' ? await startServerProcess(spec.argv, options.serverStderr) : undefined;
  let first: Connection;
  try {
    first = await open(spec, server, options);
  } catch (err) {
    await server?.stop();
    throw err;
  }
  // Destinations may be fed from a file by sendfile; its FFI comes with the send buffer's anyway.
  if (options.writable) await NbdClient.loadFileSupport().catch(() => undefined);
  const endpoint = new NbdEndpoint(spec, first, server, options);
  if (options.writable && first.export.readOnly) {
    await endpoint.close();
    throw new NbdError('EPERM', `${endpoint.name}: the destination is read-only`);
  }
  // Offsets are JavaScript numbers, exact up to 2^53 (8 PiB): a bigger source could not be
  // read to its end. (A bigger destination is fine: we never write past the source's size.)
  if (!options.writable && first.export.exactSize > BigInt(Number.MAX_SAFE_INTEGER)) {
    await endpoint.close();
    throw new NbdError('EOVERFLOW', `${endpoint.name}: the source size (${first.export.exactSize}) is larger than `
      + `${Number.MAX_SAFE_INTEGER} bytes, the most nbdcopy can address`);
  }
  return endpoint;
}

export class NbdEndpoint implements Endpoint {
  readonly name: string;
  readonly size: number;
  readonly opsName = 'nbd_ops';
  readonly sequential = false;
  readonly local = false;
  readonly preferredBlockSize: number;
  readonly minimumBlockSize: number;
  readonly maximumBlockSize: number;
  readonly maxConnections: number;
  readonly canExtents: boolean;
  readonly metaContexts: readonly string[];
  readonly isZero = false;
  readonly canZero: boolean;
  readonly releasesEarly = true;
  readonly fileSink: FileSink | undefined;
  private readonly clients: Connection[];
  private readonly info: ExportInfo;
  /** Cleared when the server refuses FAST_ZERO: plain WRITE_ZEROES from then on. */
  private tryFastZero: boolean;
  /** Largest zero request the server accepted; lowered when it refuses a big one. */
  private zeroLimit = Number.MAX_SAFE_INTEGER;
  private closing: Promise<void> | undefined;

  private readonly writable: boolean;
  private readonly log: ((line: string) => void) | undefined;

  constructor(
    private readonly spec: NbdSpec,
    first: Connection,
    private readonly server: ServerProcess | undefined,
    /** How `first` was opened: the extra connections are opened the same way. */
    private readonly opening: NbdOpenOptions,
  ) {
    this.writable = opening.writable;
    this.log = opening.log;
    this.clients = [first];
    this.info = first.export;
    this.name = nameOf(spec);
    this.size = this.info.size;
    this.minimumBlockSize = Math.max(1, this.info.blockSizeMinimum);
    this.preferredBlockSize = this.info.blockSizePreferred;
    this.maximumBlockSize = this.info.blockSizeMaximum;
    // A `[ CMD ]` server gets one connection, as with libnbd's nbdcopy: servers started this
    // way often accept a single client (qemu-nbd's default --shared=1) even when they
    // advertise multi-conn.
    this.maxConnections = this.info.canMultiConn && server === undefined ? MAX_MULTI_CONN : 1;
    this.canExtents = first.connection.metaContexts.includes(BASE_ALLOCATION);
    this.metaContexts = first.connection.metaContexts.filter((c) => c !== BASE_ALLOCATION);
    this.canZero = this.info.canZero;
    this.tryFastZero = this.info.canFastZero;
    this.fileSink = this.writable ? {
      canWriteFromFile: (conn) => this.clients[conn]!.sendsFromFile,
      writeFromFile: (fd, offset, length, conn, onSent) => this.writeFromFile(fd, offset, length, conn, onSent),
    } : undefined;
    this.log?.(`${this.name}: size=${this.size} block sizes=${this.minimumBlockSize}/${this.preferredBlockSize}/${this.maximumBlockSize}`
      + ` multi-conn=${this.info.canMultiConn} zero=${this.info.canZero} fast-zero=${this.info.canFastZero}`
      + ` extents=${this.canExtents} read-only=${this.info.readOnly}`);
  }

  get connections(): number {
    return this.clients.length;
  }

  async setConnections(count: number): Promise<void> {
    const want = Math.min(count, this.maxConnections);
    // Handshakes are several round trips each: do them side by side, not one after another.
    const opening: Promise<Connection>[] = [];
    for (let i = this.clients.length; i < want; i++) opening.push(open(this.spec, this.server, this.opening));
    const results = await Promise.allSettled(opening);
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'rejected') {
        failure ??= r.reason;
        continue;
      }
      this.clients.push(r.value);
      if (this.closing !== undefined) await r.value.close();
    }
    if (failure !== undefined) throw failure;
    this.log?.(`${this.name}: ${this.clients.length} connection(s)`);
  }

  async read(buffer: Uint8Array, offset: number, conn: number): Promise<number> {
    try {
      await this.clients[conn]!.pread(buffer, offset);
    } catch (err) {
      throw wrapError(err, `${this.name}: read at ${offset}`);
    }
    return buffer.length;
  }

  async readTake(offset: number, length: number, conn: number, take: () => Buffer): Promise<Buffer> {
    try {
      return await this.clients[conn]!.preadTake(length, offset, take);
    } catch (err) {
      throw wrapError(err, `${this.name}: read at ${offset}`);
    }
  }

  async write(buffer: Uint8Array, offset: number, conn: number, onSent?: () => void): Promise<void> {
    if (this.misaligned(offset, buffer.length)) {
      onSent?.();
      return this.mergeBlocks(buffer, offset, buffer.length, conn);
    }
    try {
      await this.clients[conn]!.pwrite(buffer, offset, undefined, onSent);
    } catch (err) {
      throw wrapError(err, `${this.name}: write at ${offset}`);
    }
  }

  private async writeFromFile(fd: number, offset: number, length: number, conn: number, onSent?: () => void): Promise<void> {
    if (this.misaligned(offset, length)) {
      // The unaligned tail: read-modify-write whole blocks (see mergeBlocks).
      const data = Buffer.allocUnsafe(length);
      let n: number;
      try {
        n = readSync(fd, data, 0, length, offset);
      } catch (err) {
        throw wrapError(err, `${this.name}: write at ${offset}`);
      }
      if (n < length) throw new NbdError('EIO', `${this.name}: write at ${offset}: the source file ends at offset ${offset + n}`);
      onSent?.();
      return this.mergeBlocks(data, offset, length, conn);
    }
    try {
      await this.clients[conn]!.pwriteFromFile(fd, offset, length, offset, undefined, onSent);
    } catch (err) {
      throw wrapError(err, `${this.name}: write at ${offset}`);
    }
  }

  private misaligned(offset: number, length: number): boolean {
    const min = this.minimumBlockSize;
    return min > 1 && (offset % min !== 0 || length % min !== 0);
  }

  /**
   * A request the server's minimum block size forbids: in practice the tail of a source
   * whose size is not a multiple of it. Read the whole blocks around it, put the new bytes
   * (or zeroes, for `data` null) in, and write the blocks back. The copier aligns every
   * other request, so no other request touches these blocks meanwhile.
   */
  private async mergeBlocks(data: Uint8Array | null, offset: number, length: number, conn: number): Promise<void> {
    const min = this.minimumBlockSize;
    const start = offset - (offset % min);
    const end = Math.ceil((offset + length) / min) * min;
    if (end > this.size) {
      throw new NbdError('EINVAL', `${this.name}: cannot write [${offset}, +${length}): the export size ${this.size} `
        + `is not a multiple of its minimum block size ${min}`);
    }
    const blocks = Buffer.alloc(end - start);
    const client = this.clients[conn]!;
    try {
      await client.pread(blocks, start);
      if (data === null) blocks.fill(0, offset - start, offset - start + length);
      else blocks.set(data, offset - start);
      await client.pwrite(blocks, start);
    } catch (err) {
      throw wrapError(err, `${this.name}: write at ${offset}`);
    }
  }

  async zero(offset: number, length: number, allocate: boolean, conn: number): Promise<void> {
    if (this.misaligned(offset, length)) {
      // Zero the whole blocks inside the range as usual; merge the partial ones.
      const min = this.minimumBlockSize;
      const alignedStart = Math.ceil(offset / min) * min;
      const alignedEnd = Math.max(alignedStart, (offset + length) - ((offset + length) % min));
      if (alignedStart > offset) await this.mergeBlocks(null, offset, Math.min(alignedStart, offset + length) - offset, conn);
      if (alignedEnd > alignedStart) await this.zero(alignedStart, alignedEnd - alignedStart, allocate, conn);
      if (offset + length > alignedEnd) await this.mergeBlocks(null, alignedEnd, offset + length - alignedEnd, conn);
      return;
    }
    if (!this.canZero) return this.writeZeroes(offset, length, conn);
    const client = this.clients[conn]!;
    for (let done = 0; done < length; ) {
      const n = Math.min(length - done, this.zeroLimit);
      try {
        await this.zeroOnce(client, offset + done, n, allocate);
      } catch (err) {
        // A server may refuse an oversized zero (EINVAL/EOVERFLOW/ERANGE): retry in
        // maximum-payload pieces from now on.
        const code = err instanceof NbdError ? err.code : undefined;
        if (n > this.maximumBlockSize && (code === 'EINVAL' || code === 'EOVERFLOW' || code === 'ERANGE')) {
          this.zeroLimit = this.maximumBlockSize - (this.maximumBlockSize % this.minimumBlockSize);
          this.log?.(`${this.name}: zero of ${n} bytes refused, splitting at ${this.zeroLimit}`);
          continue;
        }
        throw wrapError(err, `${this.name}: zero at ${offset + done}`);
      }
      done += n;
    }
  }

  private async zeroOnce(client: Connection, offset: number, length: number, allocate: boolean): Promise<void> {
    if (this.tryFastZero) {
      try {
        await client.zero(length, offset, { noHole: allocate, fastZero: true });
        return;
      } catch (err) {
        if (!(err instanceof NbdError && (err.code === 'ENOTSUP' || err.code === 'EOPNOTSUPP' as string))) throw err;
        // Zeroing is not faster than writing on this server; it still saves the network
        // bytes, so keep using plain WRITE_ZEROES.
        this.tryFastZero = false;
        this.log?.(`${this.name}: fast zero refused, using plain write zeroes`);
      }
    }
    await client.zero(length, offset, { noHole: allocate });
  }

  private async writeZeroes(offset: number, length: number, conn: number): Promise<void> {
    const chunk = Math.min(this.maximumBlockSize - (this.maximumBlockSize % this.minimumBlockSize), 4 << 20);
    const zeroes = zeroBuffer(chunk);
    for (let done = 0; done < length; ) {
      const n = Math.min(chunk, length - done);
      await this.write(zeroes.subarray(0, n), offset + done, conn);
      done += n;
    }
  }

  async extents(offset: number, length: number, conn: number): Promise<SourceExtent[]> {
    let result;
    try {
      result = await this.clients[conn]!.blockStatus(length, offset);
    } catch (err) {
      throw wrapError(err, `${this.name}: block status at ${offset}`);
    }
    const list = result.get(BASE_ALLOCATION);
    if (list === undefined || list.length === 0) return [{ offset, length, zero: false }];
    const out: SourceExtent[] = new Array(list.length);
    let at = offset;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      out[i] = { offset: at, length: e.length, zero: (e.flags & STATE_ZERO) !== 0 };
      at += e.length;
    }
    return out;
  }

  async contextExtents(context: string, offset: number, length: number, conn: number): Promise<ContextExtent[]> {
    let result;
    try {
      result = await this.clients[conn]!.blockStatus(length, offset);
    } catch (err) {
      throw wrapError(err, `${this.name}: block status (${context}) at ${offset}`);
    }
    const list = result.get(context) ?? [];
    const out: ContextExtent[] = new Array(list.length);
    let at = offset;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      out[i] = { offset: at, length: e.length, flags: e.flags };
      at += e.length;
    }
    return out;
  }

  async flush(): Promise<void> {
    if (!this.info.canFlush) {
      this.log?.(`${this.name}: server cannot flush; skipping --flush`);
      return;
    }
    try {
      await Promise.all(this.clients.map((c) => c.flush()));
    } catch (err) {
      throw wrapError(err, `${this.name}: flush`);
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.log !== undefined) {
        let sent = 0;
        let copied = 0;
        for (const c of this.clients) {
          const s = c.fileSendStats;
          sent += s.sendfileBytes;
          copied += s.copiedBytes;
        }
        if (sent + copied > 0) this.log(`${this.name}: writes from file: ${sent} bytes by sendfile, ${copied} bytes copied`);
      }
      const results = await Promise.allSettled(this.clients.map((c) => c.close()));
      await this.server?.stop();
      for (const r of results) if (r.status === 'rejected') throw wrapError(r.reason, `${this.name}: close`);
    })();
    return this.closing;
  }
}
