// Where our tools are, and the one rule that keeps dist/ (what bin/* runs) as new as src/.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUR_NBDCOPY = join(REPO, 'bin', 'nbdcopy');
export const OUR_NBDINFO = join(REPO, 'bin', 'nbdinfo');
export const NBDSERVE = join(REPO, 'bin', 'nbdserve');
export const LIBNBD_NBDCOPY = '/usr/bin/nbdcopy';
export const LIBNBD_NBDINFO = '/usr/bin/nbdinfo';

function modifiedMs(path: string): number {
  return statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? -1;
}

function newestSourceMs(dir: string): number {
  let newest = -1;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMs(path) : modifiedMs(path));
  }
  return newest;
}

let built = false;

/**
 * Compiles src/ with tsc once per test process when a CLI's output is missing or older than any
 * source file: bin/* runs dist/, and a test must never pass or fail on code older than src/.
 */
export function ensureBuilt(): void {
  if (built) return;
  const outputs = ['nbdcopy', 'nbdinfo', 'nbdserve'].map((tool) => modifiedMs(join(REPO, 'dist', 'cli', `${tool}.js`)));
  if (Math.min(...outputs) < newestSourceMs(join(REPO, 'src'))) {
    const tsc = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, encoding: 'utf8' });
    if (tsc.status !== 0) throw new Error(`npx tsc -p tsconfig.json failed:\n${tsc.stdout}${tsc.stderr}`);
  }
  built = true;
}
