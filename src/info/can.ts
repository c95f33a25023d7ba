// nbdinfo --can / --is / --has (and --cannot / --isnt / --hasnt): a property name (spelled any of the ways libnbd accepts, any case)
// -> a yes/no answer read from what the connection negotiated.
import type { ConnectionInfo, ExportInfo } from '../client/types.js';

type Question = (c: ConnectionInfo, e: ExportInfo) => boolean;

const QUESTIONS: Array<[string[], Question]> = [
  [['connect', 'read'], () => true],
  [['tls'], (c) => c.tls],
  [
    ['sr', 'structured', 'structured reply', 'structured-reply', 'structured_reply',
      'structured replies', 'structured-replies', 'structured_replies'],
    (c) => c.structuredReplies,
  ],
  // Not known to libnbd 1.14 (it reports an unknown option); later versions ask the handle.
  [
    ['eh', 'extended header', 'extended-header', 'extended_header',
      'extended headers', 'extended-headers', 'extended_headers'],
    (c) => c.extendedHeaders,
  ],
  [['readonly', 'read-only', 'read_only'], (_c, e) => e.readOnly],
  [['write'], (_c, e) => !e.readOnly],
  [['rotational'], (_c, e) => e.rotational],
  [
    ['block status payload', 'block-status-payload', 'block_status_payload'],
    (_c, e) => e.canBlockStatusPayload,
  ],
  [['cache'], (_c, e) => e.canCache],
  [['df'], (_c, e) => e.canDf],
  [['fastzero', 'fast-zero', 'fast_zero'], (_c, e) => e.canFastZero],
  [['flush'], (_c, e) => e.canFlush],
  [['fua'], (_c, e) => e.canFua],
  [['multiconn', 'multi-conn', 'multi_conn'], (_c, e) => e.canMultiConn],
  [['trim'], (_c, e) => e.canTrim],
  [['zero'], (_c, e) => e.canZero],
];

const BY_NAME = new Map<string, Question>();
for (const [names, q] of QUESTIONS) for (const n of names) BY_NAME.set(n, q);

/** The question for a --can/--is argument, or undefined when nbdinfo does not know it. */
export function canQuestion(name: string): Question | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** Exit code convention of nbdinfo --can/--is: 0 true, 2 false (the caller negates for --cannot). */
export function canExitCode(answer: boolean): number {
  return answer ? 0 : 2;
}
