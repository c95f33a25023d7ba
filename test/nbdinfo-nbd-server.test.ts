// Our nbdinfo vs libnbd's on nbd-server (a third server implementation), over a Unix socket
// and over TCP (where the "uri:" lines carry host and port).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNbdServer, type RunningServer } from './helpers/servers.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';
import { REPO, ensureBuilt } from './helpers/build.js';
import { runTool } from './helpers/run-tool.js';

const OURS = join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const ok = requireBinaries('nbd-server', THEIRS);
const maybe = ok ? describe : describe.skip;

maybe('nbdinfo vs libnbd nbdinfo on nbd-server', () => {
  const servers: RunningServer[] = [];

  beforeAll(async () => {
    ensureBuilt();
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
        expect({ stdout: ours.stdout, code: ours.code }, args.join(' ')).toEqual({ stdout: theirs.stdout, code: theirs.code });
      }
    }
  });
});
