// nbdkit's command lines, unchanged, with bin/nbdserve in place of nbdkit: options anywhere
// before `--` (GNU getopt permutes them, so `--run` may follow the plugin), and the plugin's
// magic parameter bare or as KEY=VALUE. Each line runs with both servers; the --run command's
// output must be the same.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const have = requireBinaries('/usr/bin/nbdkit', '/usr/bin/nbdinfo', '/usr/bin/psktool');
const maybe = have ? describe : describe.skip;
const dir = makeTempDir('nbdserve-lines-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = `/usr/bin/nbdinfo --size "$uri"`;
const LINES: Array<[string[], string]> = [
  [['-U', '-', 'memory', '1G', '--run', SIZE], '1073741824\n'],
  [['-U', '-', 'pattern', '64M', '--run', SIZE], '67108864\n'],
  [['-U', '-', 'memory', 'size=1M', '--run', SIZE], '1048576\n'],
  [['-U', '-', 'null', '1G', '--run', SIZE], '1073741824\n'],
  [['-U', '-', 'file', 'disk.img', '-r', '--run', '/usr/bin/nbdinfo --is read-only "$uri" && echo ro'], 'ro\n'],
  [['-U', '-', 'file', 'file=disk.img', '--run', SIZE], '4096\n'],
  [['-U', '-', 'memory', '1M', '-e', 'disk', '--run', 'echo "$exportname"'], 'disk\n'],
  // The URI names the private socket, so only its scheme is compared.
  [['-U', '-', '--tls=require', '--tls-psk=k.psk', 'memory', '1M', '--run', 'echo "${uri%%:*}"'], 'nbds+unix\n'],
];

function serve(bin: string[], args: string[]): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(bin[0]!, [...bin.slice(1), ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

maybe('nbdkit command lines run unchanged with nbdserve', () => {
  ensureBuilt();
  writeFileSync(join(dir, 'disk.img'), Buffer.alloc(4096, 1));
  spawnSync('/usr/bin/psktool', ['-u', 'alice', '-p', join(dir, 'k.psk')]);
  it.each(LINES)('%j', (args, want) => {
    const ours = serve([process.execPath, NBDSERVE], args);
    expect(ours.stderr).toBe('');
    expect(ours.stdout).toBe(want);
    expect(ours.status).toBe(0);
    const theirs = serve(['/usr/bin/nbdkit'], args);
    expect(theirs.stdout).toBe(want);
  });
  it('words after -- stay the backend\'s, even when they look like options', () => {
    const r = serve([process.execPath, NBDSERVE], ['-U', '-', '--run', 'true', '--', 'memory', '-r']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^nbdserve: error: .*-r/);
  });
});
