// The checkpoint file of a resumable copy (--checkpoint): which copy it belongs to and which
// ranges of it are done. Always replaced whole (a new file renamed over the old one), so a
// crash at any moment leaves the previous version or the new one; `durable` adds the fsyncs
// that make that hold across a power cut too.
import type * as FsPromises from 'node:fs/promises';
import path from 'node:path';
import { NbdError } from '../protocol/errors.js';
import type { RangeList } from './done-ranges.js';

const FORMAT = 'nbd-toolkit checkpoint 1';

/**
 * node:fs/promises, loaded on first use: every nbdcopy imports this file, most never touch a
 * checkpoint, and loading the module (it pulls in readline) is start-up time for nothing.
 */
function fs(): typeof FsPromises {
  return process.getBuiltinModule('node:fs/promises');
}

/**
 * What makes two runs the same copy: both sides (names and sizes) and the options that change
 * the bytes written. Any difference and the ranges recorded mean nothing for this run.
 */
export interface CopyIdentity {
  source: { name: string; size: number };
  destination: { name: string; size: number };
  /** Option name -> value, for the options that change what ends up on the destination. */
  options: Record<string, string | number | boolean | null>;
}

export interface CheckpointContents {
  identity: CopyIdentity;
  done: RangeList;
}

/** Reads FILE; undefined when it does not exist. A damaged file is an error, never ignored. */
export async function readCheckpoint(file: string): Promise<CheckpointContents | undefined> {
  let text: string;
  try {
    text = await fs().readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NbdError('EIO', `${file}: cannot read the checkpoint: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!isCheckpoint(parsed)) throw new NbdError('EINVAL', `${file}: not a checkpoint file of this tool (or damaged)`);
  return { identity: parsed.identity, done: parsed.done };
}

function isCheckpoint(v: unknown): v is CheckpointContents & { format: string } {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  if (o['format'] !== FORMAT || !Array.isArray(o['done'])) return false;
  const id = o['identity'] as CopyIdentity | undefined;
  if (typeof id !== 'object' || id === null || typeof id.options !== 'object') return false;
  const side = (s: unknown) => typeof s === 'object' && s !== null
    && typeof (s as { name: unknown }).name === 'string' && Number.isSafeInteger((s as { size: unknown }).size);
  if (!side(id.source) || !side(id.destination)) return false;
  let last = -1;
  for (const r of o['done'] as unknown[]) {
    if (!Array.isArray(r) || r.length !== 2 || !Number.isSafeInteger(r[0]) || !Number.isSafeInteger(r[1])) return false;
    if (r[0] <= last || r[1] <= r[0] || r[1] > id.source.size) return false;
    last = r[1];
  }
  return true;
}

/** The first way `found` differs from `wanted`, in words, or undefined when they match. */
export function identityMismatch(found: CopyIdentity, wanted: CopyIdentity): string | undefined {
  for (const side of ['source', 'destination'] as const) {
    const f = found[side];
    const w = wanted[side];
    if (f.name !== w.name) return `it is for ${side} ${JSON.stringify(f.name)}, not ${JSON.stringify(w.name)}`;
    if (f.size !== w.size) return `the ${side} size was ${f.size}, it is now ${w.size}`;
  }
  const keys = new Set([...Object.keys(found.options), ...Object.keys(wanted.options)]);
  for (const k of [...keys].sort()) {
    const f = found.options[k] ?? null;
    const w = wanted.options[k] ?? null;
    if (f !== w) return `it was made with ${k}=${JSON.stringify(f)}, this copy has ${k}=${JSON.stringify(w)}`;
  }
  return undefined;
}

let serial = 0;

/**
 * Replaces FILE atomically with these contents. `durable`: fsync the new file before the
 * rename and the directory after it. Worth it only when the destination is flushed too
 * (--flush): otherwise a power cut loses destination data the file would list anyway.
 */
export async function writeCheckpoint(file: string, contents: CheckpointContents, durable = true): Promise<void> {
  const text = JSON.stringify({ format: FORMAT, identity: contents.identity, done: contents.done }) + '\n';
  const tmp = `${file}.${process.pid}.${serial++}.tmp`;
  const handle = await fs().open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(text);
    if (durable) await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs().rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs().rename(tmp, file);
  } catch (err) {
    await fs().rm(tmp, { force: true });
    throw err;
  }
  if (!durable) return;
  // The rename itself is only durable once the directory is.
  const dir = await fs().open(path.dirname(path.resolve(file)), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Removes FILE after a successful copy, and new versions a killed run left half written. */
export async function removeCheckpoint(file: string): Promise<void> {
  await fs().rm(file, { force: true });
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const stale = (name: string): boolean => name.startsWith(`${base}.`) && /^\.\d+\.\d+\.tmp$/.test(name.slice(base.length));
  for (const name of await fs().readdir(dir).catch(() => [] as string[])) {
    if (stale(name)) await fs().rm(path.join(dir, name), { force: true });
  }
}
