// nbdcopy's command line, parsed by hand: `[ CMD ARGS ]` groups must be lifted out before
// option parsing, getopt-style clustering (-pv, -C4) and `--` must behave like libnbd's tool,
// and start-up stays fast without a parser library.
import { NbdError } from '../protocol/errors.js';
import { parseCount, parseSize } from './size-suffix.js';
import { MAX_REQUEST_SIZE, MIN_REQUEST_SIZE } from '../copy/options.js';
import { parseBlkhash } from './blkhash-arg.js';
import type { BlockHashSpec } from '../copy/block-digests.js';
import { parseDuration } from './duration.js';
import { parseShard, type Shard } from './nbdcopy-batch-file.js';

export type Operand = string | string[];

export interface NbdcopyArgs {
  action: 'copy' | 'help' | 'version' | 'long-options' | 'short-options';
  source: Operand;
  destination: Operand;
  allocated: boolean;
  /** undefined: default (4, when both sides allow multi-conn). */
  connections: number | undefined;
  destinationIsZero: boolean;
  flush: boolean;
  noExtents: boolean;
  /** false, a bar on stderr, or machine-readable lines on a file descriptor. */
  progress: false | 'bar' | { fd: number };
  queueSize: number;
  requestSize: number;
  requests: number;
  sparse: number;
  /** -S was given; otherwise the destination's preferred block size may raise the default. */
  sparseExplicit: boolean;
  synchronous: boolean;
  /** 0 = the number of cores. We copy on one event loop: like libnbd, it caps the connections. */
  threads: number;
  verbose: boolean;
  /** --blkhash[=ALG[/SIZE]]: print the block hash of the source. */
  blkhash: BlockHashSpec | undefined;
  /** --blkhash-file=FILE: where the hash goes instead of stdout. */
  blkhashFile: string | undefined;
  verify: boolean;
  checkpoint: string | undefined;
  dirtyBitmap: string | undefined;
  /** --request-size was given (--rate may lower the default). */
  requestSizeExplicit: boolean;
  /** Attempts in a row to reopen a lost NBD connection (0: fail as libnbd does). */
  retries: number;
  retryDelayMs: number;
  /** Bytes per second read from the source, at most. */
  rate: number | undefined;
  /** JSON lines of progress and a summary on this descriptor. */
  progressJson: false | { fd: number };
  /** --batch=FILE ('-': stdin): the copies come from the file, not SOURCE and DESTINATION. */
  batch: string | undefined;
  jobs: number;
  failFast: boolean;
  shard: Shard | undefined;
}

type Kind = 'flag' | 'value' | 'optional';
/** `ours`: not one of libnbd's options (bash completion lists them after libnbd's). */
interface OptionDef { long: string; short?: string; kind: Kind; key: string; ours?: boolean }

/**
 * In libnbd's order: getopt_long lists ambiguous matches in table order, and --long-options
 * prints the table (without itself and --short-options), which bash completion reads.
 */
const OPTIONS: OptionDef[] = [
  { long: 'help', kind: 'flag', key: 'help' },
  { long: 'long-options', kind: 'flag', key: 'longOptions' },
  { long: 'allocated', kind: 'flag', key: 'allocated' },
  { long: 'blkhash', kind: 'optional', key: 'blkhash' },
  { long: 'blkhash-file', kind: 'value', key: 'blkhashFile' },
  { long: 'checkpoint', kind: 'value', key: 'checkpoint', ours: true },
  { long: 'connections', short: 'C', kind: 'value', key: 'connections' },
  { long: 'destination-is-zero', kind: 'flag', key: 'destinationIsZero' },
  { long: 'dirty-bitmap', kind: 'value', key: 'dirtyBitmap', ours: true },
  { long: 'flush', kind: 'flag', key: 'flush' },
  { long: 'no-extents', kind: 'flag', key: 'noExtents' },
  { long: 'progress', short: 'p', kind: 'optional', key: 'progress' },
  { long: 'queue-size', kind: 'value', key: 'queueSize' },
  { long: 'request-size', kind: 'value', key: 'requestSize' },
  { long: 'requests', short: 'R', kind: 'value', key: 'requests' },
  { long: 'short-options', kind: 'flag', key: 'shortOptions' },
  { long: 'sparse', short: 'S', kind: 'value', key: 'sparse' },
  { long: 'synchronous', kind: 'flag', key: 'synchronous' },
  { long: 'target-is-zero', kind: 'flag', key: 'destinationIsZero' },
  { long: 'threads', short: 'T', kind: 'value', key: 'threads' },
  { long: 'verbose', short: 'v', kind: 'flag', key: 'verbose' },
  { long: 'verify', kind: 'flag', key: 'verify', ours: true },
  { long: 'version', short: 'V', kind: 'flag', key: 'version' },
];

/**
 * Ours, beyond libnbd's table: matched only when no libnbd option matches (so abbreviations
 * libnbd accepts mean the same here). --long-options/--short-options list them after the
 * table: those lists are for completing this tool's options, all of them.
 */
const EXTENSIONS: OptionDef[] = [
  { long: 'batch', kind: 'value', key: 'batch' },
  { long: 'fail-fast', kind: 'flag', key: 'failFast' },
  { long: 'jobs', short: 'j', kind: 'value', key: 'jobs' },
  { long: 'progress-json', kind: 'optional', key: 'progressJson' },
  { long: 'rate', kind: 'value', key: 'rate' },
  { long: 'retries', kind: 'value', key: 'retries' },
  { long: 'retry-delay', kind: 'value', key: 'retryDelay' },
  { long: 'shard', kind: 'value', key: 'shard' },
];

/** Options only the whole batch takes, not one of its copies. */
export const BATCH_ONLY_KEYS = new Set(['batch', 'jobs', 'failFast', 'shard', 'progressJson', 'progress', 'verbose']);

/** What `nbdcopy --long-options` prints, one a line. */
export function longOptionsText(): string {
  return [...OPTIONS, ...EXTENSIONS].filter((o) => o.key !== 'longOptions' && o.key !== 'shortOptions').map((o) => `--${o.long}\n`).join('');
}

/** What `nbdcopy --short-options` prints, one a line. */
export function shortOptionsText(): string {
  return [...OPTIONS, ...EXTENSIONS].filter((o) => o.short !== undefined).map((o) => `-${o.short}\n`).join('');
}

function usageError(message: string): NbdError {
  return new NbdError('EINVAL', message);
}

/** Replaces each `[ ... ]` group with one array operand. */
export function liftCommandGroups(argv: readonly string[]): Operand[] {
  const out: Operand[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === ']') throw usageError("unexpected ']' without a matching '['");
    if (a !== '[') {
      out.push(a);
      continue;
    }
    const group: string[] = [];
    let j = i + 1;
    for (; j < argv.length && argv[j] !== ']'; j++) group.push(argv[j]!);
    if (j >= argv.length) throw usageError("missing ']' after '[ " + group.join(' ') + "'");
    if (group.length === 0) throw usageError("empty command in '[ ]'");
    out.push(group);
    i = j;
  }
  return out;
}

/**
 * getopt_long's rule: an exact name, else any unambiguous prefix. Prefixes naming options that
 * do the same thing (--destination-is-zero, --target-is-zero) are not ambiguous; otherwise
 * the message lists the first match and every match that differs from it, in table order.
 * `word` is the argument as typed (with any =VALUE), as glibc quotes it.
 */
function findLong(name: string, word: string): OptionDef {
  return findIn(OPTIONS, name, word) ?? findIn(EXTENSIONS, name, word) ?? (() => {
    throw usageError(`unrecognized option '${word}'`);
  })();
}

function findIn(table: OptionDef[], name: string, word: string): OptionDef | undefined {
  const exact = table.find((o) => o.long === name);
  if (exact !== undefined) return exact;
  const matches = table.filter((o) => o.long.startsWith(name));
  if (matches.length === 0) return undefined;
  const first = matches[0]!;
  const differing = matches.filter((o) => o.key !== first.key || o.kind !== first.kind);
  if (differing.length > 0) {
    const listed = [first, ...differing].map((o) => `'--${o.long}'`).join(' ');
    throw usageError(`option '${word}' is ambiguous; possibilities: ${listed}`);
  }
  return first;
}

/** Exact for sizes past 2^32 too (bitwise operators would cut them to 32 bits). */
function isPowerOf2(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/**
 * `base`: start from these instead of the defaults (a --batch line's options on top of the
 * command line's).
 */
export function parseNbdcopyArgs(argv: readonly string[], base?: NbdcopyArgs): NbdcopyArgs {
  const args: NbdcopyArgs = base !== undefined ? { ...base, action: 'copy', source: '', destination: '' } : {
    action: 'copy', source: '', destination: '',
    allocated: false, connections: undefined, destinationIsZero: false, flush: false, noExtents: false,
    progress: false, queueSize: 16 * 1024 * 1024, requestSize: 256 * 1024, requests: 64, sparse: 4096, sparseExplicit: false,
    synchronous: false, threads: 0, verbose: false,
    blkhash: undefined, blkhashFile: undefined, verify: false, checkpoint: undefined, dirtyBitmap: undefined,
    requestSizeExplicit: false,
    retries: 0, retryDelayMs: 1000, rate: undefined, progressJson: false, batch: undefined, jobs: 1, failFast: false, shard: undefined,
  };
  const raw: Record<string, string | true> = {};
  const seen: Array<[OptionDef, string | true]> = [];
  const operands: Operand[] = [];
  const words = liftCommandGroups(argv);
  let onlyOperands = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (onlyOperands || Array.isArray(w) || w === '-' || !w.startsWith('-')) {
      operands.push(w);
      continue;
    }
    if (w === '--') {
      onlyOperands = true;
      continue;
    }
    if (w.startsWith('--')) {
      const eq = w.indexOf('=');
      const def = findLong(eq < 0 ? w.slice(2) : w.slice(2, eq), w);
      let value: string | true = true;
      if (eq >= 0) {
        if (def.kind === 'flag') throw usageError(`option '--${def.long}' doesn't allow an argument`);
        value = w.slice(eq + 1);
      } else if (def.kind === 'value') {
        const next = words[++i];
        if (next === undefined || Array.isArray(next)) throw usageError(`option '--${def.long}' requires an argument`);
        value = next;
      }
      seen.push([def, value]);
      continue;
    }
    // Short options, possibly clustered: -pv, -C4, -C 4.
    for (let k = 1; k < w.length; k++) {
      const def = OPTIONS.find((o) => o.short === w[k]) ?? EXTENSIONS.find((o) => o.short === w[k]);
      if (def === undefined) throw usageError(`invalid option -- '${w[k]}'`);
      if (def.kind !== 'value') {
        seen.push([def, true]);
        continue;
      }
      let value = w.slice(k + 1);
      if (value === '') {
        const next = words[++i];
        if (next === undefined || Array.isArray(next)) throw usageError(`option requires an argument -- '${def.short}'`);
        value = next;
      }
      seen.push([def, value]);
      break;
    }
  }
  for (const [def, value] of seen) raw[def.key] = value;
  if (raw['help'] !== undefined) return { ...args, action: 'help' };
  if (raw['version'] !== undefined) return { ...args, action: 'version' };
  if (raw['longOptions'] !== undefined) return { ...args, action: 'long-options' };
  if (raw['shortOptions'] !== undefined) return { ...args, action: 'short-options' };

  for (const [def, value] of seen) {
    const what = `--${def.long}`;
    const text = value === true ? '' : value;
    switch (def.key) {
      case 'allocated': args.allocated = true; break;
      case 'destinationIsZero': args.destinationIsZero = true; break;
      case 'flush': args.flush = true; break;
      case 'noExtents': args.noExtents = true; break;
      case 'synchronous': args.synchronous = true; break;
      case 'verbose': args.verbose = true; break;
      case 'progress': args.progress = value === true ? 'bar' : { fd: parseCount(text, what) }; break;
      case 'connections': args.connections = parseCount(text, what); break;
      case 'requests': args.requests = parseCount(text, what); break;
      case 'threads': args.threads = parseCount(text, what); break;
      case 'queueSize': args.queueSize = parseSize(text, what); break;
      case 'requestSize': args.requestSize = parseSize(text, what); args.requestSizeExplicit = true; break;
      case 'retries': args.retries = parseCount(text, what); break;
      case 'retryDelay': args.retryDelayMs = parseDuration(text, what); break;
      case 'rate':
        args.rate = parseSize(text, what);
        if (args.rate < 1) throw usageError('--rate: must be at least 1 byte per second');
        break;
      case 'progressJson': args.progressJson = { fd: value === true ? 2 : parseCount(text, what) }; break;
      case 'batch':
        if (text === '') throw usageError('--batch: expected a file name (or - for stdin)');
        args.batch = text;
        break;
      case 'jobs':
        args.jobs = parseCount(text, what);
        if (args.jobs < 1) throw usageError('--jobs: must be at least 1');
        break;
      case 'failFast': args.failFast = true; break;
      case 'shard': args.shard = parseShard(text); break;
      case 'sparse': args.sparse = parseSize(text, what); args.sparseExplicit = true; break;
      case 'blkhash': args.blkhash = parseBlkhash(value === true ? undefined : text); break;
      case 'blkhashFile': args.blkhashFile = nonEmpty(text, what); break;
      case 'verify': args.verify = true; break;
      case 'checkpoint': args.checkpoint = nonEmpty(text, what); break;
      case 'dirtyBitmap': args.dirtyBitmap = nonEmpty(text, what); break;
    }
  }
  if (args.connections !== undefined && args.connections < 1) throw usageError('--connections: must be at least 1');
  if (args.requests < 1) throw usageError('--requests: must be at least 1');
  if (args.requestSize < MIN_REQUEST_SIZE || args.requestSize > MAX_REQUEST_SIZE || !isPowerOf2(args.requestSize)) {
    throw usageError(`--request-size: must be a power of 2 between ${MIN_REQUEST_SIZE} and ${MAX_REQUEST_SIZE}`);
  }
  if (args.queueSize < 1) throw usageError('--queue-size: must be at least 1');
  // libnbd's rule. A block larger than a request is fine: the copier then looks at whole
  // requests (the plan caps the block at the request size).
  if (args.sparse !== 0 && (args.sparse < 512 || !isPowerOf2(args.sparse))) {
    throw usageError('--sparse: must be a power of 2 and >= 512');
  }

  if (base === undefined && args.batch === undefined) {
    for (const [def] of seen) {
      if (def.key === 'jobs' || def.key === 'failFast' || def.key === 'shard') throw usageError(`--${def.long}: only with --batch`);
    }
  }
  if (args.batch !== undefined && base === undefined) {
    if (operands.length !== 0) {
      throw usageError(`--batch: SOURCE and DESTINATION come from the file (got ${operands.length} more argument${operands.length === 1 ? '' : 's'})`);
    }
    // libnbd's N/100 lines have no room to say which copy they are about.
    if (typeof args.progress === 'object') throw usageError('--batch: --progress=FD shows one copy; use -p or --progress-json for a batch');
    return args;
  }
  if (base !== undefined) {
    for (const [def] of seen) {
      if (BATCH_ONLY_KEYS.has(def.key)) throw usageError(`--${def.long} applies to the whole batch, not to one copy`);
    }
  }
  if (operands.length !== 2) {
    throw usageError(operands.length < 2
      ? 'expected SOURCE and DESTINATION (try --help)'
      : `too many arguments: expected SOURCE and DESTINATION, got ${operands.length} (use -- before [ CMD ] groups with flags)`);
  }
  args.source = operands[0]!;
  args.destination = operands[1]!;
  if (args.source === 'null:') throw usageError('null: can only be used as the destination');
  // The hash alone would go where the data goes.
  if (args.blkhashFile !== undefined) args.blkhash ??= parseBlkhash(undefined);
  if (args.blkhash !== undefined && args.blkhashFile === undefined && args.destination === '-') {
    throw usageError('--blkhash: the data goes to stdout, so the hash cannot: use --blkhash-file=FILE');
  }
  return args;
}

function nonEmpty(text: string, what: string): string {
  if (text === '') throw usageError(`${what}: expected a value, got ''`);
  return text;
}
