// Backend by name, with nbdkit-style parameters: the "magic" first parameter may be given bare
// (`memory 1G`, `file disk.img`) or as key=value (`memory size=1G`).
import { NbdError } from '../../protocol/errors.js';
import { parseSize } from '../size.js';
import { MemoryBackend } from './memory.js';
import { NullBackend } from './null.js';
import { PatternBackend } from './pattern.js';
import { SparseRandomBackend } from './sparse-random.js';
import type { Backend } from './types.js';

export const BACKEND_NAMES = ['memory', 'file', 'null', 'pattern', 'sparse-random', 'nbd'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

interface Params {
  magic: string | undefined;
  named: Map<string, string>;
}

function parseParams(backend: string, args: readonly string[], magicKey: string): Params {
  const named = new Map<string, string>();
  let magic: string | undefined;
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq > 0 && /^[a-z_-]+$/i.test(arg.slice(0, eq))) named.set(arg.slice(0, eq).toLowerCase(), arg.slice(eq + 1));
    else if (magic === undefined) magic = arg;
    else throw new NbdError('EINVAL', `${backend}: unexpected parameter '${arg}'`);
  }
  if (named.has(magicKey)) {
    if (magic !== undefined) throw new NbdError('EINVAL', `${backend}: ${magicKey} given twice`);
    magic = named.get(magicKey);
    named.delete(magicKey);
  }
  return { magic, named };
}

function requireMagic(backend: string, key: string, p: Params): string {
  if (p.magic === undefined || p.magic === '') throw new NbdError('EINVAL', `${backend}: missing ${key} parameter`);
  return p.magic;
}

function rejectUnknown(backend: string, p: Params, known: readonly string[]): void {
  for (const key of p.named.keys()) {
    if (!known.includes(key)) throw new NbdError('EINVAL', `${backend}: unknown parameter '${key}'`);
  }
}

/** How {@link createBackend} builds a backend, beyond its name and parameters. */
export interface CreateOptions {
  /** Refuse writes (nbdkit's -r). */
  readOnly?: boolean;
  /** Problems that do not stop the server (the nbd backend's upstream going away). */
  warn?: (message: string) => void;
}

/**
 * Builds a backend by name from nbdkit-style parameters (`memory 1G`, `file file=disk.img`,
 * `nbd socket=/tmp/up.sock`); bad or unknown parameters are an NbdError (EINVAL).
 */
export async function createBackend(name: string, args: readonly string[] = [], options: CreateOptions = {}): Promise<Backend> {
  switch (name) {
    case 'memory': {
      const p = parseParams(name, args, 'size');
      rejectUnknown(name, p, []);
      return new MemoryBackend(parseSize(requireMagic(name, 'size', p)));
    }
    case 'null': {
      const p = parseParams(name, args, 'size');
      rejectUnknown(name, p, []);
      return new NullBackend(p.magic === undefined ? 0 : parseSize(p.magic));
    }
    case 'pattern': {
      const p = parseParams(name, args, 'size');
      rejectUnknown(name, p, []);
      return new PatternBackend(parseSize(requireMagic(name, 'size', p)));
    }
    case 'sparse-random': {
      const p = parseParams(name, args, 'size');
      rejectUnknown(name, p, ['percent', 'seed', 'runlength']);
      const num = (key: string): number | undefined => {
        const v = p.named.get(key);
        if (v === undefined) return undefined;
        const n = Number(v);
        if (!Number.isFinite(n)) throw new NbdError('EINVAL', `${name}: ${key} must be a number, got '${v}'`);
        return n;
      };
      const runLength = p.named.get('runlength');
      return new SparseRandomBackend(parseSize(requireMagic(name, 'size', p)), {
        percent: num('percent'),
        seed: num('seed'),
        runLength: runLength === undefined ? undefined : parseSize(runLength),
      });
    }
    case 'file': {
      const p = parseParams(name, args, 'file');
      rejectUnknown(name, p, []);
      // Loaded on demand: the file backend pulls in the FFI (koffi), which the others never need.
      const { FileBackend } = await import('./file.js');
      return FileBackend.open(requireMagic(name, 'file', p), options.readOnly ?? false);
    }
    case 'nbd': {
      // Loaded on demand: the client library is only needed to forward.
      const { NbdBackend } = await import('./nbd/backend.js');
      return NbdBackend.create(args, { warn: options.warn });
    }
    default:
      throw new NbdError('EINVAL', `unknown backend '${name}' (known: ${BACKEND_NAMES.join(', ')})`);
  }
}
