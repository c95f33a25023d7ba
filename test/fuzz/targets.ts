// Every fuzz target, in the order `npm run fuzz` runs them.
import type { FuzzTarget } from './harness.js';
import { clientHandshakeTarget } from './targets/client-handshake.js';
import { serverNegotiateTarget } from './targets/server-negotiate.js';
import { certDirTarget } from './targets/cert-dir.js';
import { replyReaderTarget } from './targets/reply-reader.js';
import { requestParserTarget } from './targets/request-parser.js';
import { nbdcopyArgsTarget, nbdinfoArgsTarget, pskFileTarget, uriTarget } from './targets/text-parsers.js';

export const TARGETS: ReadonlyArray<FuzzTarget<never>> = [
  replyReaderTarget,
  clientHandshakeTarget,
  requestParserTarget,
  serverNegotiateTarget,
  uriTarget,
  nbdcopyArgsTarget,
  nbdinfoArgsTarget,
  pskFileTarget,
  certDirTarget,
] as unknown as ReadonlyArray<FuzzTarget<never>>;
