// The per-connection switches of the checks a request passes before it is sent (libnbd's
// strict mode), and of the handshake flags the client may use.

/**
 * libnbd's LIBNBD_STRICT_* flags, each true (checked) unless set false. Off, the request is
 * sent as asked and the server's answer (often an error, sometimes a dropped connection) is
 * what the caller gets.
 *
 * - `commands`: commands and features the server did not advertise (write on a read-only
 *   export, trim, zero, cache, flush, block status without a meta context).
 * - `flags`: flags the server did not advertise (FUA, DF, FAST_ZERO).
 * - `bounds`: requests past the end of the export.
 * - `zeroSize`: zero-length requests.
 * - `align`: offsets and lengths not a multiple of the server's minimum block size.
 * - `payload`: READ / WRITE longer than the server's maximum payload.
 *
 * Never relaxed: offsets and lengths that are not whole non-negative numbers, and lengths a
 * compact header cannot carry (they cannot be put on the wire at all).
 *
 * @example
 * ```ts
 * const c = await connect(uri, { strict: { bounds: false, zeroSize: false } });
 * await c.pread(new Uint8Array(512), c.export.size).catch((e) => e.code); // 'EINVAL' from the server
 * ```
 */
export interface StrictMode {
  commands?: boolean;
  flags?: boolean;
  bounds?: boolean;
  zeroSize?: boolean;
  align?: boolean;
  payload?: boolean;
}

/** StrictMode with every switch decided. */
export type StrictChecks = Required<StrictMode>;

const ALL: StrictChecks = { commands: true, flags: true, bounds: true, zeroSize: true, align: true, payload: true };
const NONE: StrictChecks = { commands: false, flags: false, bounds: false, zeroSize: false, align: false, payload: false };

/** The checks ClientOptions.strict asks for: true/undefined = all, false = none, an object = all but those set false. */
export function strictChecks(strict: boolean | StrictMode | undefined): StrictChecks {
  if (strict === undefined || strict === true) return ALL;
  if (strict === false) return NONE;
  return { ...ALL, ...strict };
}

/**
 * The handshake flags (libnbd's LIBNBD_HANDSHAKE_FLAG_*) the client may answer with, each
 * true unless set false. A flag is only used when the server offers it too.
 */
export interface HandshakeFlags {
  /** NBD_FLAG_C_FIXED_NEWSTYLE: options beyond EXPORT_NAME (GO, TLS, structured replies...). */
  fixedNewstyle?: boolean;
  /** NBD_FLAG_C_NO_ZEROES: skip the 124 zero bytes after EXPORT_NAME's reply. */
  noZeroes?: boolean;
}
