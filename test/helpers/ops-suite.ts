// The set-up of the nbdcopy operations tests: a temp dir holding an 8 MiB random source, the
// build, and the servers and proxies a test starts, stopped after each test; and the copy
// with --retries while its server is killed and restarted.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, expect } from 'vitest';
import { ensureBuilt } from './build.js';
import { makeTempDir } from './temp.js';
import { crashRepeatedly, type RestartableServer } from './restartable-server.js';
import { errorLines, nbdcopy } from './nbdcopy-process.js';
import { rng } from './random.js';

export interface OpsSuite {
  readonly dir: string;
  /** 8 MiB of random bytes. */
  readonly src: string;
  readonly servers: RestartableServer[];
  readonly proxies: Array<{ close(): Promise<void> }>;
}

/** Registers the hooks; call once at the top of a test file. */
export function opsSuite(prefix: string): OpsSuite {
  let dir: string | undefined;
  const servers: RestartableServer[] = [];
  const proxies: Array<{ close(): Promise<void> }> = [];
  beforeAll(() => {
    ensureBuilt();
    const made = makeTempDir(prefix);
    dir = made;
    fs.writeFileSync(join(made, 'src.img'), crypto.randomBytes(8 << 20));
    return () => fs.rmSync(made, { recursive: true, force: true });
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  const made = (): string => {
    if (dir === undefined) throw new Error('opsSuite: the dir is made in beforeAll, read it in a test');
    return dir;
  };
  return {
    get dir() {
      return made();
    },
    get src() {
      return join(made(), 'src.img');
    },
    servers,
    proxies,
  };
}

/**
 * Copies `uri` (served by `server` from a copy of `src`) to `out` with --retries while the
 * server is killed and restarted `crashes` times at moments drawn from `seed`, once the copy
 * runs; expects no error, exit 0, `out` equal to `src`, and at least one retry reported.
 */
export async function copyThroughCrashes(
  server: RestartableServer, uri: string, out: string, src: string, crashes: number, seed: number,
): Promise<void> {
  const copying = nbdcopy(['-v', '--retries=8', '--retry-delay=20ms', '--request-size=64K', '-R', '4', uri, out, '--progress-json=1']);
  // Once the copy runs (every connection open).
  await copying.copying;
  await crashRepeatedly(server, crashes, 250, 30, rng(seed));
  const r = await copying;
  expect(errorLines(r)).toEqual([]);
  expect(r.status).toBe(0);
  expect(fs.readFileSync(out).equals(fs.readFileSync(src))).toBe(true);
  const done = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { event: string; retries: number };
  expect(done.event).toBe('done');
  // The last crash may come after the copy ended; the first one cannot.
  expect(done.retries).toBeGreaterThanOrEqual(1);
}
