// What every fuzz target shares: the budget (FUZZ_RUNS, FUZZ_SECONDS, FUZZ_SEED), the rule that a
// case ends in a result or a typed error within bounded time, a watch on the buffers a case
// allocates, and the arbitraries that damage valid traffic.
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { NbdError } from '../../src/protocol/errors.js';
import { replayFromEnv } from '../helpers/property.js';

/** One fuzz target: an input generator and a check that throws on a finding. */
export interface FuzzTarget<T> {
  name: string;
  input: fc.Arbitrary<T>;
  /** Runs one case; throws (anything but an accepted typed error) on a finding. */
  check(input: T): void | Promise<void>;
  /** Largest single buffer a case may allocate (the protocol's limit for this parser). */
  maxAlloc: number;
  /** Async targets: a case slower than this is a hang. */
  timeoutMs?: number;
}

/** A failure of the target's contract (not a typed error the parser may legitimately throw). */
export class Finding extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'Finding';
  }
}

/** Rethrows anything that is not an NbdError with an errno code (or one of the extra classes given). */
export function expectTyped(err: unknown, ...also: Array<abstract new (...a: never[]) => Error>): void {
  if (err instanceof NbdError && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) return;
  if (also.some((k) => err instanceof k)) return;
  throw new Finding(`untyped exception: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
}

/** The largest buffer requested through Buffer.alloc/allocUnsafe/allocUnsafeSlow since reset(). */
export const allocWatch = {
  max: 0,
  reset(): void {
    this.max = 0;
  },
};

let patched = false;
/** Wraps Buffer's allocators once, recording the largest size asked for. */
export function watchAllocations(): void {
  if (patched) return;
  patched = true;
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const original = Buffer[name] as (size: number, ...rest: unknown[]) => Buffer;
    (Buffer as unknown as Record<string, unknown>)[name] = function (this: unknown, size: number, ...rest: unknown[]): Buffer {
      if (size > allocWatch.max) allocWatch.max = size;
      return original.call(this, size, ...rest);
    };
  }
}

export function budget(): { runs: number; seconds: number; seed: number | undefined; path: string | undefined } {
  const replay = replayFromEnv();
  const runs = replay.runs ?? 300;
  const seconds = Number(process.env.FUZZ_SECONDS ?? (replay.runs !== undefined ? 0 : 1.5));
  // The same FUZZ_SEED / FUZZ_PATH as every randomised test: CI replays one fixed sequence, so a
  // push fails only for a change it made; `npm run fuzz` and local runs draw a new seed each
  // time (printed with any failure).
  return { runs, seconds, seed: replay.seed, path: replay.path };
}

/** Rejects with a Finding when `p` has not settled after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Finding(`${what}: no result after ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FuzzReport {
  name: string;
  runs: number;
  ms: number;
  failed: boolean;
  message: string;
}

/** Runs one target to its budget; a counterexample comes back shrunk, with the seed and path that replay it. */
export async function runTarget<T>(t: FuzzTarget<T>): Promise<FuzzReport> {
  watchAllocations();
  const { runs, seconds, seed, path } = budget();
  let cases = 0;
  const one = async (input: T): Promise<void> => {
    // A long run of cases that settle in microtasks never lets the event loop turn, and
    // vitest's worker then misses its own RPC deadline ("Timeout calling onTaskUpdate"), which
    // fails a clean 1M-case run; a macrotask now and then answers it.
    if (++cases % 2000 === 0) await new Promise((resolve) => setImmediate(resolve));
    allocWatch.reset();
    const r = t.check(input);
    if (r instanceof Promise) await within(r, t.timeoutMs ?? 5000, t.name);
    if (allocWatch.max > t.maxAlloc) {
      throw new Finding(`allocated a buffer of ${allocWatch.max} bytes (limit ${t.maxAlloc})`);
    }
  };
  const started = performance.now();
  const params: fc.Parameters<[T]> = {
    numRuns: runs,
    ...(seed !== undefined ? { seed } : {}),
    ...(path !== undefined ? { path } : {}),
    ...(seconds > 0 ? { interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false } : {}),
    endOnFailure: false,
  };
  const details = await fc.check(fc.asyncProperty(t.input, one), params);
  const ms = performance.now() - started;
  return {
    name: t.name,
    runs: details.numRuns,
    ms,
    failed: details.failed,
    message: details.failed
      ? `${fc.defaultReportMessage(details) ?? 'failed'}\nGot: ${String(details.errorInstance)}\nReplay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''} FUZZ_TARGET='${t.name}'`
      : '',
  };
}

/** Cuts `bytes` into pieces at the given sizes (the rest is one last piece): how a socket might deliver them. */
export function split(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  for (const s of sizes) {
    if (p >= bytes.length) break;
    const n = Math.max(1, s);
    out.push(bytes.subarray(p, p + n));
    p += n;
  }
  if (p < bytes.length) out.push(bytes.subarray(p));
  return out;
}

export const chunkSizes = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 });

/** Values that break length and offset fields: zero, off-by-one, sign bits, 4 GiB and beyond. */
const INTERESTING_U32 = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'u32'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'repeat'; at: number; n: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat()) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
);

function mutate(bytes: Buffer, m: Mutation): Buffer {
  const len = bytes.length;
  if (len === 0) return m.kind === 'insert' ? Buffer.from(m.bytes) : bytes;
  const at = m.at % len;
  switch (m.kind) {
    case 'flip': { const b = Buffer.from(bytes); b[at] = b[at]! ^ (1 << m.bit); return b; }
    case 'set': { const b = Buffer.from(bytes); b[at] = m.value; return b; }
    case 'u32': {
      const b = Buffer.from(bytes);
      const v = Buffer.alloc(4);
      v.writeUInt32BE(m.value >>> 0);
      v.copy(b, at, 0, Math.min(4, len - at));
      return b;
    }
    case 'insert': return Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
    case 'delete': return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.n)]);
    case 'truncate': return bytes.subarray(0, at);
    case 'repeat': {
      // Replays a stretch of earlier traffic (a header sent twice, an option repeated).
      const piece = bytes.subarray(at, at + m.n);
      return Buffer.concat([bytes.subarray(0, at + m.n), piece, bytes.subarray(at + m.n)]);
    }
  }
}

/** Traffic to feed a parser: valid (`intact`, so the result can be checked), damaged, or random bytes. */
export interface Traffic<M> {
  model: M;
  bytes: Buffer;
  intact: boolean;
}

/**
 * Valid traffic from `valid` (a model and its bytes), then either left intact, damaged by one to
 * four mutations, or replaced by arbitrary bytes.
 */
export function traffic<M>(valid: fc.Arbitrary<{ model: M; bytes: Buffer }>): fc.Arbitrary<Traffic<M>> {
  return fc.oneof(
    { weight: 1, arbitrary: valid.map((v) => ({ ...v, intact: true })) },
    {
      weight: 6,
      arbitrary: fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([v, ms]) => ({
        model: v.model, bytes: ms.reduce(mutate, v.bytes), intact: false,
      })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.uint8Array({ maxLength: 256 })).map(([v, raw]) => ({
        model: v.model, bytes: Buffer.from(raw), intact: false,
      })),
    },
  );
}

/**
 * Two connected in-memory streams: what one writes, the other reads. `end()` on one side ends
 * the other's readable side, as a socket's FIN would.
 */
export function duplexPair(): [Duplex, Duplex] {
  let a: Duplex | undefined;
  let b: Duplex | undefined;
  const make = (peer: () => Duplex): Duplex => new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      const p = peer();
      if (!p.destroyed && !p.readableEnded) p.push(Buffer.from(chunk));
      done();
    },
    final(done) {
      const p = peer();
      if (!p.destroyed && !p.readableEnded) p.push(null);
      done();
    },
    destroy(err, done) {
      const p = peer();
      if (!p.destroyed && !p.readableEnded) p.push(null);
      done(err);
    },
  });
  a = make(() => b!);
  b = make(() => a!);
  return [a, b];
}
