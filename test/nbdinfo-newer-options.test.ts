// What later libnbd added to nbdinfo, on top of 1.14's output: --has (= --can), the negated
// --cannot / --isnt / --hasnt (exit 0 when false, 2 when true), --uri, and the extended-headers
// and block-status-payload properties. Our server speaks extended headers; nbdkit 1.32 does not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnNbdserve, type SpawnedNbdserve } from './helpers/embedded.js';
import { runTool } from './helpers/run-tool.js';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { join } from 'node:path';
import { REPO } from './helpers/build.js';
import { requireBinaries } from './helpers/binaries.js';

const OURS = join(REPO, 'bin', 'nbdinfo');
const have = requireBinaries('/usr/bin/nbdkit', '/usr/bin/nbdinfo');
const maybe = have ? describe : describe.skip;

let nbdkit: RunningServer;
let ours: SpawnedNbdserve;
let oursReadOnly: SpawnedNbdserve;

beforeAll(async () => {
  if (!have) return;
  nbdkit = await startNbdkit(['memory', '1M']);
  ours = await spawnNbdserve(['memory', '1M']);
  oursReadOnly = await spawnNbdserve(['-r', 'memory', '1M']);
});
afterAll(async () => {
  await Promise.allSettled([nbdkit?.stop(), ours?.stop(), oursReadOnly?.stop()]);
});

async function status(args: string[]): Promise<number> {
  const r = await runTool(OURS, args);
  expect(r.stdout).toBe('');
  if (r.code === 1) throw new Error(r.stderr);
  expect(r.stderr).toBe('');
  return r.code;
}

maybe('nbdinfo --has, --cannot, --isnt, --hasnt', () => {
  it('--can and --has extended-headers: yes from our server, no from nbdkit 1.32', async () => {
    for (const flag of ['--can', '--has', '--is']) {
      expect(await status([flag, 'extended-headers', ours.uri])).toBe(0);
      expect(await status([flag, 'extended-headers', nbdkit.uri])).toBe(2);
    }
    expect(await status(['--has', 'eh', ours.uri])).toBe(0);
  });
  // No server installed here sets NBD_FLAG_BLOCK_STATUS_PAYLOAD (ours, nbdkit 1.32 and qemu-nbd
  // 7.2 do not), so only the "no" answer is seen: the name is known and read from the flags.
  it('--can block-status-payload: a known property, false on these servers', async () => {
    expect(await status(['--can', 'block-status-payload', ours.uri])).toBe(2);
    expect(await status(['--can', 'block-status-payload', nbdkit.uri])).toBe(2);
    expect(await status(['--cannot', 'block_status_payload', ours.uri])).toBe(0);
  });
  it('negations turn the answer round', async () => {
    for (const flag of ['--cannot', '--isnt', '--hasnt']) {
      expect(await status([flag, 'extended-headers', ours.uri])).toBe(2);
      expect(await status([flag, 'extended-headers', nbdkit.uri])).toBe(0);
    }
    expect(await status(['--isnt', 'read-only', oursReadOnly.uri])).toBe(2);
    expect(await status(['--isnt', 'read-only', ours.uri])).toBe(0);
    expect(await status(['--cannot', 'write', oursReadOnly.uri])).toBe(0);
  });
  it('the last of --can and --cannot wins, and an unknown name is still an error', async () => {
    expect(await status(['--can', 'write', '--cannot', 'write', ours.uri])).toBe(2);
    const r = await runTool(OURS, ['--hasnt', 'teleport', ours.uri]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^nbdinfo: unknown --can or --is option: teleport\n$/);
  });
});

maybe('nbdinfo --uri', () => {
  it('prints the canonical URI, as the uri: line of the report has it', async () => {
    const r = await runTool(OURS, ['--uri', nbdkit.uri]);
    expect(r.code, r.stderr).toBe(0);
    const reported = (await runTool('/usr/bin/nbdinfo', [nbdkit.uri])).stdout.match(/^\turi: (.*)$/m)?.[1];
    expect(reported).toBeDefined();
    expect(r.stdout).toBe(`${reported}\n`);
  });
  it('with --json, a JSON string', async () => {
    const r = await runTool(OURS, ['--uri', '--json', ours.uri]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toBe(`nbd+unix:///?socket=${ours.socket}`);
  });
  it('cannot be mixed with another mode', async () => {
    const r = await runTool(OURS, ['--uri', '--size', ours.uri]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
});
