// nbdcopy as a library call: name the two sides as on nbdcopy's command line (or pass specs
// or endpoints already open), copy, and close what was opened here (subprocesses included).
import { NbdError } from '../protocol/errors.js';
import type { Endpoint } from './endpoint.js';
import type { CopyObserver } from './observer.js';
import { DEFAULT_COPY_OPTIONS, type CopyOptions } from './options.js';
import { copyEndpoints, type CopyResult } from './copier.js';
import { checkUriSides, openDestination, openSource } from './open.js';
import { describeSpec, parseEndpointSpec, type EndpointSpec } from './spec.js';
import { progressObserver } from './observers/progress.js';
import { checkIntegrityRequest, IntegrityPlan, type SideDescription } from './integrity.js';
import type { RetryEvent, RetryOptions } from '../client/reconnect.js';
import type { UriAllowList } from '../client/uri-allow.js';

/**
 * One side of a copy: a file or device path, '-' (stdin or stdout), an NBD URI, 'null:'
 * (destination only), the words of a `[ CMD ARGS ]` server (an array), a parsed
 * EndpointSpec, or an Endpoint the caller opened (and will close).
 */
export type CopyEndpoint = string | readonly string[] | EndpointSpec | Endpoint;

/** nbdcopy's minimum for -S; its default is this or the destination's preferred block size. */
const DEFAULT_SPARSE = 4096;

/**
 * A copy's options: nbdcopy's, and what an NBD URI side may ask for.
 *
 * The URI allow-lists (`uriAllowTransports`, `uriAllowTls`, `uriAllowLocalFile`) are
 * connect()'s, with its defaults: any transport, TLS or not, and no local files, so a URI
 * naming `tls-psk-file=` or `tls-certificates=` is refused unless `uriAllowLocalFile` is true.
 * A refused URI rejects the copy with one NbdError EPERM before either side is opened. They
 * cover URI sides only: a path, '-' or `[ CMD ]` side is not checked, so a program that takes
 * sides from its users must decide which kinds it accepts itself ({@link parseEndpointSpec}).
 * nbdcopy passes {@link TOOL_URI_ALLOW_LIST}, as libnbd's nbdcopy does.
 *
 * @example
 * ```ts
 * // A URI from a user: TCP only, TLS required, no key files of this program's.
 * await copy(userUri, 'disk.img', { uriAllowTransports: ['tcp'], uriAllowTls: 'require' });
 * // An operator's URI naming its own PSK file.
 * await copy('nbds://backup/disk?tls-psk-file=/etc/nbd/keys.psk', 'disk.img', { uriAllowLocalFile: true });
 * ```
 */
export interface CopyRequest extends Partial<Omit<CopyOptions, 'sparseSize'>>, UriAllowList {
  /** Told about the copy as it runs, in this order: progress, block hashes, a journal ... */
  observers?: readonly CopyObserver[];
  /**
   * All-zero runs of this many bytes inside data become zero requests (nbdcopy's -S); 0
   * turns detection off. Default: 4096 or the destination's preferred block size, whichever
   * is larger, as nbdcopy does.
   */
  sparseSize?: number;
  /** Called after each finished range with the bytes done so far (and the total, when known). */
  onProgress?: (done: number, total: number | undefined) => void;
  /**
   * NBD sides: attempts in a row to reopen a lost connection, whose unanswered requests are
   * then sent again (default 0: a lost connection fails the copy). See connect()'s retries.
   */
  retries?: number;
  /** Pause before the first attempt, doubling after each failure (default 1000 ms). */
  retryDelayMs?: number;
  /** Told before each attempt, with the side's name. */
  onRetry?: (event: RetryEvent & { endpoint: string }) => void;
  /**
   * Where the stderr of `[ CMD ]` servers goes, as text (default: straight to this process's
   * stderr). nbdcopy -p passes it through its bar, which must not be drawn over.
   */
  serverStderr?: (text: string) => void;
}

/** Copies `source` to `destination` as nbdcopy does; resolves with the plan and bytes copied. */
export async function copy(source: CopyEndpoint, destination: CopyEndpoint, request: CopyRequest = {}): Promise<CopyResult> {
  const {
    onProgress, sparseSize, observers: given, retries, retryDelayMs, onRetry, serverStderr,
    uriAllowTransports, uriAllowTls, uriAllowLocalFile, ...rest
  } = request;
  const allow: UriAllowList = { uriAllowTransports, uriAllowTls, uriAllowLocalFile };
  const log = request.log;
  const sourceSide = describeSide(source);
  const destinationSide = describeSide(destination);
  checkIntegrityRequest(sourceSide, destinationSide, request);
  await checkUriSides([sourceSide, destinationSide].filter((s): s is EndpointSpec => !isEndpoint(s)), allow);
  const retry = (spec: EndpointSpec): RetryOptions | undefined => retries === undefined || retries <= 0 ? undefined
    : { retries, retryDelayMs, onRetry: onRetry === undefined ? undefined : (e) => onRetry({ ...e, endpoint: describeSpec(spec) }) };
  let src: Endpoint | undefined;
  let dst: Endpoint | undefined;
  let integrity: IntegrityPlan | undefined;
  let ok = false;
  const opened: Endpoint[] = [];
  try {
    const metaContexts = IntegrityPlan.sourceContexts(request);
    src = await resolve(source, (spec) => openSource(spec, { ...allow, log, metaContexts, retry: retry(spec), serverStderr }), opened);
    log?.(`source: ${src.name} size=${src.size ?? 'stream'} connections=${src.connections} `
      + `max=${src.maxConnections} extents=${src.canExtents}`);
    const sourceSize = src.size;
    // Before the destination is opened: a new file is truncated when it is.
    integrity = await IntegrityPlan.prepare(request, src, sourceSide, destinationSide, {
      allocated: request.allocated ?? DEFAULT_COPY_OPTIONS.allocated,
      destinationIsZero: request.destinationIsZero ?? DEFAULT_COPY_OPTIONS.destinationIsZero,
    }, log);
    const hints = { sourceSize, ...integrity.destinationHints() };
    dst = await resolve(destination, (spec) => openDestination(spec, hints, { ...allow, log, retry: retry(spec), serverStderr }), opened);
    log?.(`destination: ${dst.name} size=${dst.size ?? 'any'} zero=${dst.isZero} canZero=${dst.canZero}`);
    const signal = request.signal;
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new NbdError('EINTR', String(signal.reason ?? 'interrupted'));
    const options: CopyOptions = {
      ...DEFAULT_COPY_OPTIONS,
      ...rest,
      sparseSize: sparseSize ?? Math.max(DEFAULT_SPARSE, dst.preferredBlockSize),
    };
    integrity.attach(src, dst, options.flush, options.connections * options.queueSize);
    options.ranges ??= integrity.ranges;
    const observers: CopyObserver[] = [...(given ?? []), ...integrity.observers];
    if (onProgress !== undefined) observers.push(progressObserver((done) => onProgress(done, sourceSize)));
    const result = await copyEndpoints(src, dst, options, observers);
    ok = true;
    const blockHash = integrity.blockHash;
    return blockHash === undefined ? result : { ...result, blockHash };
  } catch (err) {
    await integrity?.failed();
    throw err;
  } finally {
    // On success a failing close (a final flush, a subprocess) is an error worth reporting;
    // after a failure the first error is the one the caller needs, so close quietly.
    const closing = await Promise.allSettled(opened.map((e) => e.close()));
    if (ok) for (const c of closing) if (c.status === 'rejected') throw c.reason;
  }
}

/** What a side is before it is opened, for the checks that must come first. */
function describeSide(e: CopyEndpoint): SideDescription {
  if (isEndpoint(e)) return e;
  return typeof e === 'string' || Array.isArray(e) ? parseEndpointSpec(e as string | string[]) : e as EndpointSpec;
}

function isEndpoint(e: CopyEndpoint): e is Endpoint {
  return typeof e === 'object' && !Array.isArray(e) && typeof (e as Endpoint).read === 'function';
}

async function resolve(e: CopyEndpoint, open: (spec: EndpointSpec) => Promise<Endpoint>, opened: Endpoint[]): Promise<Endpoint> {
  if (isEndpoint(e)) return e;
  const spec = typeof e === 'string' || Array.isArray(e) ? parseEndpointSpec(e as string | string[]) : e as EndpointSpec;
  const endpoint = await open(spec);
  opened.push(endpoint);
  return endpoint;
}
