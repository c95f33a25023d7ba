// Every backend, and the factory that builds one by name.
export type { Backend, BlockSizeLimits, Extent, ExportListing, ZeroOptions } from './types.js';
export { FileBackend, type FileBackendOptions } from './file.js';
export { MemoryBackend } from './memory.js';
export { NullBackend } from './null.js';
export { PatternBackend } from './pattern.js';
export { SparseRandomBackend } from './sparse-random.js';
export { createBackend, BACKEND_NAMES, type BackendName, type CreateOptions } from './factory.js';
