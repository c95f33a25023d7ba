// Public surface of the copy engine (nbdcopy as a library): `copy()` for whole copies named as
// on nbdcopy's command line, the endpoint contract and the observer interface for features.
export { copy, type CopyEndpoint, type CopyRequest } from './api.js';
export { copyMany, type CopyJob, type CopyManyOptions, type CopyOutcome } from './copy-many.js';
export { copyEndpoints, type CopyResult } from './copier.js';
export { planCopy, SLICE_SIZE, type CopyPlan, type Strategy } from './plan.js';
export { openSource, openDestination, type OpenOptions } from './open.js';
export { parseEndpointSpec, describeSpec, type EndpointSpec } from './spec.js';
export type { Endpoint, SourceExtent, DestinationHints, FileSource, FileSink, OpsName } from './endpoint.js';
export type { CopyObserver, CopyStart, CopyEnd } from './observer.js';
export { progressObserver } from './observers/progress.js';
export { DEFAULT_COPY_OPTIONS, MAX_REQUEST_SIZE, MIN_REQUEST_SIZE, type CopyOptions } from './options.js';
