// nbdinfo's command line, parsed the way GNU getopt_long parses libnbd's: options may come
// before or after the URI, long options may be abbreviated to any unambiguous prefix, "--"
// ends the options, and "[ CMD ARGS ... ]" names a server to run as a subprocess.

export type InfoMode = 'show' | 'list' | 'size' | 'map' | 'can' | 'uri';

export type InfoTarget = { uri: string } | { command: string[] };

export interface InfoOptions {
  mode: InfoMode;
  json: boolean;
  /** --color / --no-color; undefined means "colour if stdout is a terminal". */
  colour?: boolean;
  /** Whether to run file(1) on the first sectors. */
  content: boolean;
  /** The context for --map (base:allocation by default). */
  map?: string;
  totals: boolean;
  /** The property for --can / --is / --has, or their negations. */
  can?: string;
  /** --cannot / --isnt / --hasnt: exit 0 when the property is false, 2 when true. */
  negated?: boolean;
  target: InfoTarget;
}

export type ParsedArgs =
  | { action: 'run'; options: InfoOptions }
  | { action: 'help' }
  | { action: 'version' }
  | { action: 'long-options' }
  | { action: 'short-options' };

/** A command-line mistake: the CLI prints the message as one line and exits 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type ArgKind = 'none' | 'required' | 'optional';
type OptId =
  | 'help' | 'can' | 'cannot' | 'uri' | 'colour' | 'no-colour' | 'content' | 'no-content' | 'json' | 'list'
  | 'long-options' | 'map' | 'short-options' | 'size' | 'totals' | 'version';

/**
 * The long options libnbd 1.14's nbdinfo accepts, in its own order (--long-options prints them,
 * getopt lists ambiguous matches in this order), plus the spellings later libnbd added (--has,
 * --cannot, --hasnt, --isnt, --uri) where it put them.
 */
export const LONG_OPTIONS: ReadonlyArray<readonly [string, OptId, ArgKind]> = [
  ['help', 'help', 'none'],
  ['can', 'can', 'required'],
  ['cannot', 'cannot', 'required'],
  ['color', 'colour', 'none'],
  ['colors', 'colour', 'none'],
  ['colour', 'colour', 'none'],
  ['colours', 'colour', 'none'],
  ['no-color', 'no-colour', 'none'],
  ['no-colors', 'no-colour', 'none'],
  ['no-colour', 'no-colour', 'none'],
  ['no-colours', 'no-colour', 'none'],
  ['content', 'content', 'none'],
  ['no-content', 'no-content', 'none'],
  ['has', 'can', 'required'],
  ['hasnt', 'cannot', 'required'],
  ['is', 'can', 'required'],
  ['isnt', 'cannot', 'required'],
  ['json', 'json', 'none'],
  ['list', 'list', 'none'],
  ['long-options', 'long-options', 'none'],
  ['map', 'map', 'optional'],
  ['short-options', 'short-options', 'none'],
  ['size', 'size', 'none'],
  ['total', 'totals', 'none'],
  ['totals', 'totals', 'none'],
  ['uri', 'uri', 'none'],
  ['version', 'version', 'none'],
];

export const SHORT_OPTIONS = ['L', 'V'] as const;

/**
 * getopt_long's rule: an exact name, else a prefix; spellings of one option (--colo for
 * --color/--colour) are not ambiguous. The message names the first match and each match that
 * differs from it, and quotes the argument as typed (`word`, with any =VALUE), as glibc does.
 */
function findLong(name: string, word: string): readonly [string, OptId, ArgKind] {
  const exact = LONG_OPTIONS.find(([n]) => n === name);
  if (exact) return exact;
  const matches = LONG_OPTIONS.filter(([n]) => n.startsWith(name));
  if (matches.length === 0) throw new UsageError(`unrecognized option '${word}'`);
  const first = matches[0]!;
  const differing = matches.filter(([, id, kind]) => id !== first[1] || kind !== first[2]);
  if (differing.length > 0) {
    const listed = [first, ...differing].map(([n]) => `'--${n}'`).join(' ');
    throw new UsageError(`option '${word}' is ambiguous; possibilities: ${listed}`);
  }
  return first;
}

interface Flags {
  json: boolean;
  colour?: boolean;
  content: boolean;
  noContent: boolean;
  list: boolean;
  size: boolean;
  totals: boolean;
  map?: string;
  can?: string;
  negated: boolean;
  uri: boolean;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const flags: Flags = { json: false, content: false, noContent: false, list: false, size: false, totals: false, negated: false, uri: false };
  const operands: string[] = [];

  // Returns an action that ends parsing at once (help, version, ...), like getopt's exit().
  const apply = (id: OptId, value: string | undefined): ParsedArgs | undefined => {
    switch (id) {
      case 'help': return { action: 'help' };
      case 'version': return { action: 'version' };
      case 'long-options': return { action: 'long-options' };
      case 'short-options': return { action: 'short-options' };
      case 'can': flags.can = value; flags.negated = false; break;
      case 'cannot': flags.can = value; flags.negated = true; break;
      case 'uri': flags.uri = true; break;
      case 'colour': flags.colour = true; break;
      case 'no-colour': flags.colour = false; break;
      case 'content': flags.content = true; break;
      case 'no-content': flags.noContent = true; break;
      case 'json': flags.json = true; break;
      case 'list': flags.list = true; break;
      case 'map': flags.map = value ?? 'base:allocation'; break;
      case 'size': flags.size = true; break;
      case 'totals': flags.totals = true; break;
    }
    return undefined;
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const [full, id, kind] = findLong(name, arg);
      let value: string | undefined;
      if (eq >= 0) {
        if (kind === 'none') throw new UsageError(`option '--${full}' doesn't allow an argument`);
        value = arg.slice(eq + 1);
      } else if (kind === 'required') {
        if (i + 1 >= argv.length) throw new UsageError(`option '--${full}' requires an argument`);
        value = argv[++i];
      }
      const done = apply(id, value);
      if (done) return done;
    } else if (arg.startsWith('-') && arg !== '-') {
      for (const ch of arg.slice(1)) {
        if (ch === 'L') flags.list = true;
        else if (ch === 'V') return { action: 'version' };
        else throw new UsageError(`invalid option -- '${ch}'`);
      }
    } else {
      operands.push(arg);
    }
  }
  operands.push(...argv.slice(i));

  let target: InfoTarget;
  if (operands.length >= 3 && operands[0] === '[' && operands[operands.length - 1] === ']') {
    target = { command: operands.slice(1, -1) };
  } else if (operands.length === 1) {
    target = { uri: operands[0]! };
  } else if (operands.length === 0) {
    throw new UsageError("missing NBD URI or '[ CMD ARGS ... ]' (see nbdinfo --help)");
  } else {
    throw new UsageError(
      `expected one NBD URI or '[ CMD ARGS ... ]', got ${operands.length} arguments (see nbdinfo --help)`,
    );
  }

  if (Number(flags.list) + Number(flags.can !== undefined) + Number(flags.map !== undefined) + Number(flags.size) > 1) {
    throw new UsageError('you cannot use --list, --map and --size together.');
  }
  if (flags.uri && (flags.list || flags.can !== undefined || flags.map !== undefined || flags.size)) {
    throw new UsageError('you cannot use --uri with --list, --map, --size or --can.');
  }
  if (flags.content && flags.noContent) throw new UsageError('you cannot use --content and --no-content together.');
  if (flags.totals && flags.map === undefined) throw new UsageError('you must use --totals only with --map option.');

  const mode: InfoMode = flags.list ? 'list'
    : flags.size ? 'size'
    : flags.map !== undefined ? 'map'
    : flags.can !== undefined ? 'can'
    : flags.uri ? 'uri'
    : 'show';
  // Content probing: on by default except with --list; never for --map, --can and --size.
  let content = !flags.list;
  if (flags.content) content = true;
  if (flags.noContent) content = false;
  if (mode === 'map' || mode === 'can' || mode === 'size' || mode === 'uri') content = false;

  const options: InfoOptions = { mode, json: flags.json, content, totals: flags.totals, target };
  if (flags.colour !== undefined) options.colour = flags.colour;
  if (flags.map !== undefined) options.map = flags.map;
  if (flags.can !== undefined) options.can = flags.can;
  if (flags.negated) options.negated = true;
  return { action: 'run', options };
}
