// The external-binary policy of every test: a missing server or reference tool skips loudly
// on a developer's machine and fails in CI (CI=true), where everything must run.
import { existsSync } from 'node:fs';
import { execaSync } from 'execa';

const found = new Map<string, string | undefined>();

/** The path of `name` on PATH (or `name` itself when it is a path that exists). */
export function which(name: string): string | undefined {
  if (!found.has(name)) {
    if (name.includes('/')) found.set(name, existsSync(name) ? name : undefined);
    else {
      const r = execaSync('sh', ['-c', `command -v ${name}`], { reject: false });
      found.set(name, r.exitCode === 0 ? r.stdout.trim() : undefined);
    }
  }
  return found.get(name);
}

/**
 * True when `name` is installed. When missing: in CI (CI=true) throws, so the test file fails;
 * locally prints a loud warning and returns false so the caller can skip.
 */
export function requireBinary(name: string): boolean {
  if (which(name) !== undefined) return true;
  const msg = `required binary '${name}' is not installed`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: failing instead of skipping)`);
  console.warn(`\n*** WARNING: ${msg}; SKIPPING the tests that need it ***\n`);
  return false;
}

/** True when every binary is installed (same CI rule as requireBinary). */
export function requireBinaries(...names: string[]): boolean {
  return names.map(requireBinary).every(Boolean);
}
