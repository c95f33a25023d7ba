// bin/nbdcopy and bin/nbdinfo are both shell scripts and CommonJS: run directly, the shell part
// starts Node without NODE_EXTRA_CA_CERTS unless an nbds URI is on the command line, and
// launch.cjs puts the variable back for subprocess servers. No timing here (that is the
// benchmarks' job): Node warns on stderr when it loads an unreadable NODE_EXTRA_CA_CERTS file,
// which tells whether it was loaded.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type Embedded } from './helpers/embedded.js';
import { REPO, ensureBuilt } from './helpers/build.js';

interface Outcome {
  stdout: string;
  stderr: string;
  code: number;
}

const MISSING_CERTS = '/nonexistent/extra-ca.pem';

function run(file: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: 30_000, env, cwd }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0 });
    });
  });
}

const bin = (tool: string) => join(REPO, 'bin', tool);
const withCerts = (): NodeJS.ProcessEnv => ({ ...process.env, NODE_EXTRA_CA_CERTS: MISSING_CERTS });

describe('bin/ launchers', () => {
  let server: Embedded;
  let dir = '';
  let uri = '';

  beforeAll(async () => {
    ensureBuilt();
    server = await startEmbedded({ backend: ['memory', '3M'] });
    uri = `nbd+unix:///?socket=${server.socket}`;
    dir = mkdtempSync(join(tmpdir(), 'startup-launcher-'));
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a plain URI: Node never reads NODE_EXTRA_CA_CERTS (no warning about the missing file)', async () => {
    const r = await run(bin('nbdinfo'), ['--size', uri], withCerts());
    expect(r).toMatchObject({ code: 0, stdout: `${3 << 20}\n`, stderr: '' });
    const c = await run(bin('nbdcopy'), [uri, 'null:'], withCerts());
    expect(c).toMatchObject({ code: 0, stdout: '', stderr: '' });
  });

  it('an nbds URI: Node gets NODE_EXTRA_CA_CERTS as given', async () => {
    const r = await run(bin('nbdinfo'), ['--size', `nbds+unix:///?socket=${join(dir, 'no-such.sock')}`], withCerts());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(MISSING_CERTS);
  });

  it('a [ CMD ] server sees the environment exactly as the user set it', async () => {
    const seen = join(dir, 'env.txt');
    const script = `printf '%s|%s' "$NODE_EXTRA_CA_CERTS" "\${NBD_TOOLKIT_SAVED_NODE_EXTRA_CA_CERTS-unset}" > "${seen}"; exit 1`;
    const r = await run(bin('nbdcopy'), ['--', '[', 'sh', '-c', script, ']', 'null:'], withCerts());
    expect(r.code).toBe(1);
    expect(readFileSync(seen, 'utf8')).toBe(`${MISSING_CERTS}|unset`);

    const env = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const unset = `printf '%s|%s' "\${NODE_EXTRA_CA_CERTS-unset}" "\${NBD_TOOLKIT_SAVED_NODE_EXTRA_CA_CERTS-unset}" > "${seen}"; exit 1`;
    expect((await run(bin('nbdcopy'), ['--', '[', 'sh', '-c', unset, ']', 'null:'], env)).code).toBe(1);
    expect(readFileSync(seen, 'utf8')).toBe('unset|unset');
  });

  it('runs through a symlink from any directory, as `node bin/TOOL` and as `sh TOOL`', async () => {
    const link = join(dir, 'nbdinfo-link');
    symlinkSync(bin('nbdinfo'), link);
    const expected = { code: 0, stdout: `${3 << 20}\n`, stderr: '' };
    expect(await run(link, ['--size', uri], withCerts(), dir)).toMatchObject(expected);
    expect(await run('nbdinfo-link', ['--size', uri], { ...withCerts(), PATH: `${dir}:${process.env.PATH ?? ''}` }, tmpdir()))
      .toMatchObject(expected);
    expect(await run(process.execPath, [bin('nbdinfo'), '--size', uri], process.env, dir)).toMatchObject(expected);
    expect(await run('sh', ['nbdinfo', '--size', uri], withCerts(), join(REPO, 'bin'))).toMatchObject(expected);
  });

  it('arguments reach the tool unchanged (spaces, globs, quotes, an empty one)', async () => {
    const r = await run(bin('nbdcopy'), ['--', 'a b', '*', "it's", ''], withCerts());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^nbdcopy: too many arguments: expected SOURCE and DESTINATION, got 4/);
  });
});
