// nbdcopy's parsed arguments as the library's copy request: the one mapping, shared by a
// single copy and by each line of --batch.
import type { CopyRequest } from '../copy/api.js';
import { DEFAULT_COPY_OPTIONS } from '../copy/options.js';
import type { NbdcopyArgs } from './nbdcopy-args.js';

/** The copy request (plus the run shape -v reports) that nbdcopy's arguments ask for. */
export function copyOptions(args: NbdcopyArgs): CopyRequest & { connections: number; requests: number; synchronous: boolean } {
  // libnbd's nbdcopy opens no more connections than threads (-T, default: the cores), since
  // each of its threads serves one connection. Ours serves every connection from one event
  // loop, where more connections keep more server threads busy: -T caps them only when given.
  const connections = Math.min(args.connections ?? DEFAULT_COPY_OPTIONS.connections, args.threads > 0 ? args.threads : Infinity);
  return {
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
