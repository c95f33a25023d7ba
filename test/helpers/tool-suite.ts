// The set-up most end-to-end tool tests share: build once, one temp dir for the file, and at
// the end every server started for it stopped and the dir removed.
import fs from 'node:fs';
import { afterAll, beforeAll } from 'vitest';
import { ensureBuilt } from './build.js';
import { makeTempDir } from './temp.js';
import type { RunningServer } from './servers.js';

export interface ToolSuite {
  /** The file's temp dir (set before its first test). */
  readonly dir: string;
  /** Servers to stop after the file's last test. */
  readonly servers: RunningServer[];
}

/** Registers the hooks; call once at the top of a test file. */
export function toolSuite(): ToolSuite {
  const servers: RunningServer[] = [];
  let dir: string | undefined;
  beforeAll(() => {
    ensureBuilt();
    dir = makeTempDir();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error('toolSuite: dir is made in beforeAll, read it in a test or hook');
      return dir;
    },
    servers,
  };
}
