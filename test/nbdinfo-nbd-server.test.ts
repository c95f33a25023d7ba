// Our nbdinfo vs libnbd's on nbd-server (a third server implementation), over a Unix socket
// and over TCP (where the "uri:" lines carry host and port).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, requireBinaries, startNbdServer, type RunningServer } from './helpers/servers.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const OURS = join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const ok = requireBinaries('nbd-server', THEIRS);
const maybe = ok ? describe : describe.skip;

function runTool(bin: string, args: string[]): Promise<{ stdout: string; code: number }> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: 30_000 }, (err, stdout) => {
      resolve({ stdout, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0 });
    });
  });
}

maybe('nbdinfo vs libnbd nbdinfo on nbd-server', () => {
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    if (!existsSync(join(REPO, 'dist', 'cli', 'nbdinfo.js'))) {
      spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: REPO, stdio: 'inherit' });
    }
    const dir = makeTempDir('nbdinfo-nbd-server-');
    const disk = join(dir, 'disk.img');
    const bytes = Buffer.alloc(3 << 20);
    bytes.write('some data at the start', 0);
    bytes.fill(7, 2 << 20, (2 << 20) + 4096);
    writeFileSync(disk, bytes);
    const exports = [{ name: 'disk1', file: disk }, { name: 'ro disk', file: disk, readOnly: true }];
    servers.push(await startNbdServer(exports));
    servers.push(await startNbdServer(exports, { tcp: true }));
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('text, JSON, size, map, list, --can over Unix and TCP', async () => {
    for (const server of servers) {
      const listUri = server.uri.replace('/disk1', '/');
      const cases = [
        [server.uri], ['--json', server.uri], ['--size', server.uri], ['--map', server.uri],
        ['--map', '--totals', '--json', server.uri], ['--list', listUri], ['--list', '--json', listUri],
        ['--can', 'write', server.uri], ['--is', 'read-only', server.uri.replace('disk1', 'ro%20disk')],
      ];
      for (const args of cases) {
        const [ours, theirs] = await Promise.all([runTool(OURS, args), runTool(THEIRS, args)]);
        expect(ours, args.join(' ')).toEqual(theirs);
      }
    }
  });
});
