// Private helpers of the copy / nbdcopy tests: temp dirs, running our bin and libnbd's,
// hashing files, and the external-binary policy (fail in CI, loud skip elsewhere).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SourceExtent } from '../src/copy/endpoint.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUR_NBDCOPY = path.join(REPO, 'bin/nbdcopy');
export const LIBNBD_NBDCOPY = '/usr/bin/nbdcopy';

let built = false;
/** Builds dist/ once per test process when it is missing or older than the sources we test. */
export function ensureBuilt(): void {
  if (built) return;
  const out = path.join(REPO, 'dist/cli/nbdcopy.js');
  const src = path.join(REPO, 'src/cli/nbdcopy.ts');
  if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(src).mtimeMs) {
    spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'ignore' });
  }
  built = true;
}

/** True when `bin` can be run; in CI a missing binary fails the test, elsewhere it warns. */
export function haveBinary(bin: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  if (!found) {
    if (process.env['CI'] === 'true') throw new Error(`${bin} is required in CI but was not found`);
    console.warn(`\n*** SKIPPING: ${bin} is not installed ***\n`);
  }
  return found;
}

export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'nbdcopy-test-'));
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Allocated bytes of a file (st_blocks × 512). */
export function allocatedBytes(file: string): number {
  return fs.statSync(file).blocks * 512;
}

export interface RunResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

export function run(bin: string, args: string[], options: { input?: Buffer | string; cwd?: string; timeout?: number } = {}): RunResult {
  const r = spawnSync(bin, args, {
    input: options.input,
    cwd: options.cwd,
    timeout: options.timeout ?? 50_000,
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, NBD_DEBUG: '' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

/** Writes `data` at each offset of a sparse file of `size` bytes. */
export function makeSparseFile(file: string, size: number, pieces: Array<[number, Buffer]>): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    for (const [offset, data] of pieces) fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Deterministic pseudo-random bytes (no zero runs). */
export function noise(length: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = (x & 0xff) | 1;
  }
  return b;
}

export function hasExactlyOneErrorLine(stderr: string, tool = 'nbdcopy'): boolean {
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  return lines.length === 1 && lines[0]!.startsWith(`${tool}: `) && !/\n\s+at /.test(stderr);
}

export function which(bin: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${bin}`]).toString().trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Like run(), without blocking this process's event loop (needed with in-process servers). */
export function runAsync(bin: string, args: string[], options: { cwd?: string; input?: Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd: options.cwd, env: { ...process.env, NBD_DEBUG: '' } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.end(options.input);
  });
}

/** True when `file` holds each piece's bytes at its offset. */
export function regionsMatch(file: string, pieces: Array<[number, Buffer]>): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    return pieces.every(([offset, data]) => {
      const b = Buffer.alloc(data.length);
      fs.readSync(fd, b, 0, b.length, offset);
      return b.equals(data);
    });
  } finally {
    fs.closeSync(fd);
  }
}

/** The part of an extent map inside [offset, offset+length), as a test source reports it. */
export function clipExtents(map: SourceExtent[], offset: number, length: number): SourceExtent[] {
  const out: SourceExtent[] = [];
  for (const e of map) {
    const start = Math.max(e.offset, offset);
    const end = Math.min(e.offset + e.length, offset + length);
    if (start < end) out.push({ offset: start, length: end - start, zero: e.zero });
  }
  return out;
}
