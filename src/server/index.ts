// The embedded NBD server: library entry point.
/**
 * The embedded NBD server, `import { startServer } from 'nbd-toolkit/server'`: serve a
 * backend (memory, file, null, pattern, sparse-random, or your own {@link Backend}) on a Unix
 * socket or TCP port, with TLS and fault injection, as `bin/nbdserve` does.
 *
 * @packageDocumentation
 */
export { startServer, type RunningServer } from './listener.js';
export { runSession, type Session } from './session.js';
export type { ServerOptions, ExportSpec, BackendInput, SessionConfig, ResolvedExport } from './options.js';
export type { ServerTlsOptions } from '../tls/types.js';
export { MAX_PAYLOAD } from './options.js';
export {
  createBackend, BACKEND_NAMES, MemoryBackend, FileBackend, NullBackend, PatternBackend, SparseRandomBackend,
  type Backend, type BackendName, type BlockSizeLimits, type CreateOptions, type Extent, type ExportListing,
  type FileBackendOptions,
  type ZeroOptions,
} from './backends/index.js';
export { parseErrorRate, parseDelay, FAULT_KINDS, type FaultOptions, type FaultKind, type ErrorRate } from './faults.js';
export { parseSize } from './size.js';
export { fillPattern } from './backends/pattern.js';
export type { SparseRandomOptions } from './backends/sparse-random.js';
