// nbdcopy --batch=FILE: the file (JSON lines, one copy each) and --shard=I/N, which picks the
// lines one of N machines runs. Everything here is checked before the first copy starts, so a
// bad line stops the whole batch with nothing written.
import { NbdError } from '../protocol/errors.js';

export type BatchOperand = string | string[];

export interface BatchJob {
  /** The line's number in the file, counting from 1 (blank lines count too). */
  line: number;
  source: BatchOperand;
  destination: BatchOperand;
  /** The line's "options" as command-line words (`--request-size=1M`, `--flush`). */
  optionWords: string[];
}

/** --shard=I/N: this process runs the lines whose number is I modulo N. */
export interface Shard {
  index: number;
  count: number;
}

function lineError(line: number, why: string): NbdError {
  return new NbdError('EINVAL', `batch line ${line}: ${why}`);
}

function operand(value: unknown, key: string, line: number): BatchOperand {
  if (value === undefined) throw lineError(line, `missing "${key}"`);
  if (typeof value === 'string' && value !== '') return value;
  // An array is the words of a [ CMD ARGS ] server, as between the brackets on the command line.
  if (Array.isArray(value) && value.length > 0 && value.every((w) => typeof w === 'string')) return value as string[];
  throw lineError(line, `"${key}" must be a non-empty string, or an array of strings (a [ CMD ARGS ] server)`);
}

/** {"request-size": "1M", "flush": true, "C": 2} -> --request-size=1M --flush -C2 */
function optionWords(value: unknown, line: number): string[] {
  if (value === undefined) return [];
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw lineError(line, '"options" must be an object of nbdcopy options, e.g. {"request-size": "1M"}');
  }
  const words: string[] = [];
  for (const [name, v] of Object.entries(value)) {
    if (!/^[A-Za-z][A-Za-z-]*$/.test(name)) throw lineError(line, `"${name}" is not an option name`);
    if (typeof v === 'boolean') {
      if (v) words.push(name.length === 1 ? `-${name}` : `--${name}`);
      continue;
    }
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) {
      throw lineError(line, `option "${name}" must be a string, a number or a boolean`);
    }
    words.push(name.length === 1 ? `-${name}${v}` : `--${name}=${v}`);
  }
  return words;
}

/** Every line of `text`, checked. `name` is the file as given, for the message when it is empty. */
export function parseBatchFile(text: string, name: string): BatchJob[] {
  const jobs: BatchJob[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue;
    const line = i + 1;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      throw lineError(line, `not JSON (${(err as Error).message})`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw lineError(line, 'expected an object {"source": ..., "destination": ..., "options": {...}}');
    }
    const fields = parsed as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (key !== 'source' && key !== 'destination' && key !== 'options') throw lineError(line, `unknown field "${key}"`);
    }
    jobs.push({
      line,
      source: operand(fields['source'], 'source', line),
      destination: operand(fields['destination'], 'destination', line),
      optionWords: optionWords(fields['options'], line),
    });
  }
  if (jobs.length === 0) throw new NbdError('EINVAL', `--batch=${name}: the file lists no copies`);
  return jobs;
}

/** `I/N` with 0 <= I < N (I as Kubernetes' JOB_COMPLETION_INDEX counts). */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (m === null) throw new NbdError('EINVAL', `--shard: expected I/N (e.g. 0/4), got '${text}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!Number.isSafeInteger(count) || count < 1) throw new NbdError('EINVAL', `--shard: N must be at least 1, got '${text}'`);
  if (!Number.isSafeInteger(index) || index >= count) {
    throw new NbdError('EINVAL', `--shard: I must be between 0 and N-1, got '${text}'`);
  }
  return { index, count };
}

/** The jobs this shard runs (all of them without a shard). */
export function selectShard(jobs: readonly BatchJob[], shard: Shard | undefined): BatchJob[] {
  if (shard === undefined) return [...jobs];
  return jobs.filter((j) => j.line % shard.count === shard.index);
}
