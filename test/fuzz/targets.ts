// Every fuzz target, in the order `npm run fuzz` runs them.
import type { FuzzTarget } from './harness.js';
import { replyReaderTarget } from './targets/reply-reader.js';
import { requestParserTarget } from './targets/request-parser.js';
import { nbdcopyArgsTarget, nbdinfoArgsTarget, pskFileTarget, uriTarget } from './targets/text-parsers.js';

export const TARGETS: ReadonlyArray<FuzzTarget<never>> = [
  replyReaderTarget,
  requestParserTarget,
  uriTarget,
  nbdcopyArgsTarget,
  nbdinfoArgsTarget,
  pskFileTarget,
] as unknown as ReadonlyArray<FuzzTarget<never>>;
