// nbdcopy's parsed arguments as the library's copy request: the one mapping, shared by a
// single copy and by each line of --batch.
import type { CopyRequest } from '../copy/api.js';
import { DEFAULT_COPY_OPTIONS } from '../copy/options.js';
import type { NbdcopyArgs } from './nbdcopy-args.js';
import { onlineCpus } from '../sys/cpus.js';
import { TOOL_URI_ALLOW_LIST } from '../client/uri-allow.js';

/** The copy request (plus the run shape -v reports) that nbdcopy's arguments ask for. */
export function copyOptions(args: NbdcopyArgs): CopyRequest & { connections: number; requests: number; synchronous: boolean } {
  // As libnbd's nbdcopy: no more connections than threads (-T, default the online CPUs), so a
  // drop-in opens what it opens (each extra connection is another busy thread in the server).
  const threads = args.threads > 0 ? args.threads : onlineCpus();
  const connections = Math.min(args.connections ?? DEFAULT_COPY_OPTIONS.connections, threads);
  return {
    // As libnbd's nbdcopy: the URIs are its user's own, and may name key files (tls-psk-file=).
    ...TOOL_URI_ALLOW_LIST,
    connections,
    requests: args.requests,
    requestSize: args.requestSize,
    queueSize: args.queueSize,
    // Unless -S was given, the library picks nbdcopy's default for the destination.
    sparseSize: args.sparseExplicit ? args.sparse : undefined,
    allocated: args.allocated,
    destinationIsZero: args.destinationIsZero,
    noExtents: args.noExtents,
    flush: args.flush,
    synchronous: args.synchronous,
    blockHash: args.blkhash,
    verify: args.verify,
    checkpoint: args.checkpoint,
    dirtyBitmap: args.dirtyBitmap,
  };
}
