// The embedded NBD server: library entry point.
export { startServer, type RunningServer } from './listener.js';
export { runSession, type Session } from './session.js';
export type { ServerOptions, ExportSpec, BackendInput } from './options.js';
export { MAX_PAYLOAD } from './options.js';
export {
  createBackend, BACKEND_NAMES, MemoryBackend, FileBackend, NullBackend, PatternBackend, SparseRandomBackend,
  type Backend, type BackendName, type BlockSizeLimits, type Extent, type ZeroOptions,
} from './backends/index.js';
export { parseErrorRate, parseDelay, FAULT_KINDS, type FaultOptions, type FaultKind, type ErrorRate } from './faults.js';
export { parseSize } from './size.js';
export { fillPattern } from './backends/pattern.js';
