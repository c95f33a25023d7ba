// Fault injection for tests: make chosen kinds of request fail at a rate, answer late, or have
// the connection dropped after a number of requests. Library options and CLI flags share it.
import { NbdError, type ErrnoCode } from '../protocol/errors.js';

export const FAULT_KINDS = ['read', 'write', 'zero', 'trim', 'flush', 'cache', 'extents'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface ErrorRate {
  /** Probability 0..1 that a request of this kind fails. */
  rate: number;
  errno: ErrnoCode;
}

export interface FaultOptions {
  /** Per kind, or 'all' for every kind not listed. */
  errors?: Partial<Record<FaultKind | 'all', ErrorRate>>;
  /** Milliseconds to wait before serving a request of this kind. */
  delays?: Partial<Record<FaultKind | 'all', number>>;
  /** Hard-disconnect a connection when its request number N+1 arrives (N requests get served). */
  disconnectAfter?: number;
  /** Source of randomness for error rates (tests pass a seeded one). */
  random?: () => number;
}

/** nbdkit's error/delay filters call them pread/pwrite: accept both spellings. */
const ALIASES: Record<string, FaultKind | 'all'> = {
  read: 'read', pread: 'read', write: 'write', pwrite: 'write', zero: 'zero', trim: 'trim',
  flush: 'flush', cache: 'cache', extents: 'extents', 'block-status': 'extents', all: 'all',
};

const ERRNO_NAMES: readonly ErrnoCode[] = ['EPERM', 'EIO', 'ENOMEM', 'EINVAL', 'ENOSPC', 'EOVERFLOW', 'ENOTSUP', 'ESHUTDOWN'];

function kindOf(text: string, flag: string): FaultKind | 'all' {
  const kind = ALIASES[text.toLowerCase()];
  if (!kind) throw new NbdError('EINVAL', `${flag}: unknown request kind '${text}' (use ${Object.keys(ALIASES).join(', ')})`);
  return kind;
}

/** Parses `KIND=RATE[:ERRNO]`, e.g. `read=0.1:EIO`. */
export function parseErrorRate(spec: string, into: FaultOptions = {}): FaultOptions {
  const m = /^([a-z-]+)=([0-9.]+%?)(?::([A-Za-z]+))?$/.exec(spec.trim());
  if (!m) throw new NbdError('EINVAL', `--error-rate: expected KIND=RATE[:ERRNO], got '${spec}'`);
  const kind = kindOf(m[1]!, '--error-rate');
  let rate = Number(m[2]!.replace('%', ''));
  if (m[2]!.endsWith('%')) rate /= 100;
  if (!(rate >= 0 && rate <= 1)) throw new NbdError('EINVAL', `--error-rate: rate must be 0..1, got '${m[2]}'`);
  const errno = (m[3] ?? 'EIO').toUpperCase() as ErrnoCode;
  if (!ERRNO_NAMES.includes(errno)) throw new NbdError('EINVAL', `--error-rate: unknown errno '${m[3]}' (use ${ERRNO_NAMES.join(', ')})`);
  (into.errors ??= {})[kind] = { rate, errno };
  return into;
}

/** Parses `KIND=MS`, e.g. `write=50`. */
export function parseDelay(spec: string, into: FaultOptions = {}): FaultOptions {
  const m = /^([a-z-]+)=([0-9.]+)(ms|s)?$/.exec(spec.trim());
  if (!m) throw new NbdError('EINVAL', `--delay: expected KIND=MS, got '${spec}'`);
  const kind = kindOf(m[1]!, '--delay');
  const ms = Number(m[2]) * (m[3] === 's' ? 1000 : 1);
  if (!Number.isFinite(ms)) throw new NbdError('EINVAL', `--delay: bad delay '${m[2]}'`);
  (into.delays ??= {})[kind] = ms;
  return into;
}

/** Per-connection view of the fault options, cheap to ask on every request. */
export class FaultInjector {
  private served = 0;

  constructor(private readonly options: FaultOptions | undefined) {}

  get active(): boolean {
    return this.options !== undefined;
  }

  /** True when this request should not be served: the connection is to be dropped. */
  countRequest(): boolean {
    const limit = this.options?.disconnectAfter;
    if (limit === undefined) return false;
    this.served++;
    return this.served > limit;
  }

  delayFor(kind: FaultKind): number {
    const d = this.options?.delays;
    return d ? d[kind] ?? d.all ?? 0 : 0;
  }

  /** The injected error for this request, if the dice say so. */
  errorFor(kind: FaultKind): NbdError | undefined {
    const e = this.options?.errors;
    if (!e) return undefined;
    const spec = e[kind] ?? e.all;
    if (!spec || spec.rate <= 0) return undefined;
    const roll = (this.options?.random ?? Math.random)();
    if (roll >= spec.rate) return undefined;
    return new NbdError(spec.errno, `injected ${spec.errno} on ${kind}`);
  }
}
