// The library form of nbdcopy: open both sides, copy, always close (subprocesses included).
import type { CopyOptions } from './options.js';
import { DEFAULT_COPY_OPTIONS } from './options.js';
import { copy, type CopyResult } from './copier.js';
import { openDestination, openSource } from './open.js';
import { parseEndpointSpec } from './spec.js';
import type { Endpoint } from './endpoint.js';

/**
 * Copies SOURCE to DESTINATION, named as on nbdcopy's command line: a file or device path,
 * '-', an NBD URI, 'null:' (destination only), or the words of a `[ CMD ARGS ]` server.
 */
export async function copyImage(
  source: string | string[],
  destination: string | string[],
  options: Partial<CopyOptions> = {},
): Promise<CopyResult> {
  const opts: CopyOptions = { ...DEFAULT_COPY_OPTIONS, ...options };
  let src: Endpoint | undefined;
  let dst: Endpoint | undefined;
  let ok = false;
  try {
    src = await openSource(parseEndpointSpec(source), { log: opts.log });
    dst = await openDestination(parseEndpointSpec(destination), { sourceSize: src.size }, { log: opts.log });
    const result = await copy(src, dst, opts);
    ok = true;
    return result;
  } finally {
    const closing = await Promise.allSettled([src?.close(), dst?.close()]);
    if (ok) for (const c of closing) if (c.status === 'rejected') throw c.reason;
  }
}
