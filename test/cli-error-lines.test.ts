// Every CLI ends through the same error line (src/cli/report-error.ts): one line, and text a
// server chose (its error messages, an export name it echoes) cannot drive the user's
// terminal: control characters are shown as \xHH.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnNbdserve, type SpawnedNbdserve } from './helpers/embedded.js';
import { runTool } from './helpers/run-tool.js';
import { REPO } from './helpers/build.js';

const NBDINFO = join(REPO, 'bin', 'nbdinfo');
let server: SpawnedNbdserve;

beforeAll(async () => {
  server = await spawnNbdserve(['-e', 'disk', 'memory', '1M']);
});
afterAll(async () => {
  await server?.stop();
});

describe('nbdinfo error lines', () => {
  it('escapes control characters in a server\'s error message', async () => {
    // The server's refusal repeats the export name we asked for: ESC [ 31 m ... BEL.
    const uri = `nbd+unix:///%1B%5B31mred%07?socket=${server.socket}`;
    const r = await runTool(NBDINFO, [uri]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^nbdinfo: .*'\\x1b\[31mred\\x07'.*\n$/);
    // eslint-disable-next-line no-control-regex
    expect(r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
  });
});
