// Public surface of the copy engine (nbdcopy as a library).
export { copyImage } from './copy-image.js';
export { copyMany, type CopyJob, type CopyManyOptions, type CopyOutcome } from './copy-many.js';
export { copy, planCopy, type CopyPlan, type CopyResult } from './copier.js';
export { openSource, openDestination, type OpenOptions } from './open.js';
export { parseEndpointSpec, describeSpec, type EndpointSpec } from './spec.js';
export type { Endpoint, SourceExtent, DestinationHints } from './endpoint.js';
export { DEFAULT_COPY_OPTIONS, MAX_REQUEST_SIZE, MIN_REQUEST_SIZE, type CopyOptions } from './options.js';
