// Which of our modules a plain nbdinfo or nbdcopy run loads: the reconnecting client and
// multi-conn are loaded only by the runs that ask for them, so the others do not pay for them
// at start-up. Runs tsc's ES modules (NBD_TOOLKIT_NO_BUNDLE=1) under a module hook that lists
// every file Node resolves; the bundle keeps the same imports, each evaluated on first use.
// No timing here: start-up figures belong to the benchmarks.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from './helpers/embedded.js';
import { OUR_NBDCOPY, OUR_NBDINFO, REPO, ensureBuilt } from './helpers/build.js';

/** Loaded only when a run asks for retries or multi-conn; the client's index loads them all. */
const OPTIONAL = ['client/index.js', 'client/reconnect.js', 'client/retry-policy.js', 'client/multi-conn.js'];

describe('modules a plain run loads', () => {
  let server: Embedded;
  let dir = '';
  let uri = '';
  let register = '';

  beforeAll(async () => {
    ensureBuilt();
    server = await startEmbedded({ backend: ['memory', '1M'] });
    uri = `nbd+unix:///?socket=${server.socket}`;
    dir = mkdtempSync(join(tmpdir(), 'startup-modules-'));
    // The hook runs on Node's loader thread: it appends each resolved file to the run's list.
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.LOADED_LIST, resolved.url + '\\n');
  return resolved;
}\n`);
    register = join(dir, 'register.mjs');
    writeFileSync(register, `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`);
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `bin` and returns the files of our dist/ it loaded, relative to dist/. */
  async function loaded(name: string, bin: string, args: string[]): Promise<string[]> {
    const list = join(dir, `${name}.list`);
    writeFileSync(list, '');
    const env = { ...process.env, NBD_TOOLKIT_NO_BUNDLE: '1', LOADED_LIST: list };
    const stderr = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', register, bin, ...args], { encoding: 'utf8', timeout: 30_000, env },
        (err, _stdout, errText) => (err ? reject(new Error(`${name}: ${err.message} ${errText}`)) : resolve(errText)));
    });
    expect(stderr, name).toBe('');
    const dist = `file://${join(REPO, 'dist')}/`;
    const files = readFileSync(list, 'utf8').split('\n').filter((u) => u.startsWith(dist)).map((u) => u.slice(dist.length));
    return [...new Set(files)].sort();
  }

  it('nbdinfo --json: the client without reconnection or multi-conn', async () => {
    const files = await loaded('nbdinfo', OUR_NBDINFO, ['--json', uri]);
    expect(files).toContain('client/connect.js');
    expect(files).toContain('client/uri-allow.js');
    expect(files.filter((f) => OPTIONAL.includes(f))).toEqual([]);
  });

  it('nbdcopy to null: the same; with --retries, the reconnecting client is loaded', async () => {
    const plain = await loaded('nbdcopy', OUR_NBDCOPY, [uri, 'null:']);
    expect(plain).toContain('client/connect.js');
    expect(plain.filter((f) => OPTIONAL.includes(f))).toEqual([]);

    const retrying = await loaded('nbdcopy-retries', OUR_NBDCOPY, ['--retries=1', uri, 'null:']);
    expect(retrying).toEqual(expect.arrayContaining(['client/reconnect.js', 'client/retry-policy.js']));
    expect(retrying).not.toContain('client/multi-conn.js');
  });
});
