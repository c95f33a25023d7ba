// The set-up of the nbdcopy operations tests: a temp dir holding an 8 MiB random source, the
// build, and the servers and proxies a test starts, stopped after each test.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll } from 'vitest';
import { ensureBuilt } from './build.js';
import { makeTempDir } from './temp.js';
import type { RestartableServer } from './restartable-server.js';

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
