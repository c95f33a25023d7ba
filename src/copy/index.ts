// Public surface of the copy engine (nbdcopy as a library): `copy()` for whole copies named as
// on nbdcopy's command line, the endpoint contract and the observer interface for features.
/**
 * The copy engine, `nbd-toolkit/copy`: {@link copy} as in the main entry, plus the plan,
 * the {@link Endpoint} contract for sides of your own and the {@link CopyObserver} hooks.
 *
 * @packageDocumentation
 */
export { copy, type CopyEndpoint, type CopyRequest } from './api.js';
export { copyMany, type CopyJob, type CopyManyOptions, type CopyOutcome } from './copy-many.js';
export { copyEndpoints, type CopyResult } from './copier.js';
export type { CopyStats } from './copy-run.js';
export { planCopy, SLICE_SIZE, type CopyPlan, type Strategy } from './plan.js';
export { openSource, openDestination, type OpenOptions } from './open.js';
export { parseEndpointSpec, describeSpec, type EndpointSpec } from './spec.js';
export type { Endpoint, SourceExtent, ContextExtent, DestinationHints, FileSource, FileSink, OpsName } from './endpoint.js';
export type { CopyObserver, CopyStart, CopyEnd } from './observer.js';
export { progressObserver } from './observers/progress.js';
export { rateLimit, RateLimiter, requestSizeForRate, type RateClock } from './observers/rate-limit.js';
export { DEFAULT_COPY_OPTIONS, MAX_REQUEST_SIZE, MIN_REQUEST_SIZE, type CopyOptions } from './options.js';
export type { BlockHashSpec, HashAlgorithm } from './block-digests.js';
export type { RangeSource } from './range-source.js';
export type { RangeList } from './done-ranges.js';
export type { IntegrityOptions } from './integrity-options.js';
