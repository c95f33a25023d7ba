// The example lines of nbdkit's man pages that our backends can serve, run with bin/nbdserve
// in place of nbdkit and with nbdkit itself: the same answers from both. A line that would
// listen on TCP port 10809 gets `-U SOCKET` added (the only change), so tests never share a
// port; a line with `-U -` and `--run` runs exactly as printed. Lines we cannot serve are listed
// in the README (sizes past 2^53, file's fadvise= and cache=, plugins we do not have).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const have = requireBinaries('/usr/bin/nbdkit', '/usr/bin/nbdinfo', '/usr/bin/psktool', '/usr/bin/qemu-img');
const maybe = have ? describe : describe.skip;
const top = makeTempDir('nbdserve-man-');
afterAll(() => rmSync(top, { recursive: true, force: true }));

const SERVERS: Record<string, string[]> = { nbdserve: [process.execPath, NBDSERVE], nbdkit: ['/usr/bin/nbdkit', '-f'] };

let started = 0;

/** A server started from a man-page line on a private socket; its size as libnbd's nbdinfo sees it. */
async function sizeOf(server: string, line: string[], cwd: string, uriQuery = ''): Promise<string> {
  // nbdkit leaves its socket behind when it exits: a fresh name each time.
  const sock = join(cwd, `${server}-${++started}.sock`);
  const [cmd, ...pre] = SERVERS[server]!;
  const child = spawn(cmd!, [...pre, '-U', sock, ...line], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(50);
    expect(existsSync(sock), `${server} ${line.join(' ')}: ${stderr}`).toBe(true);
    const uri = uriQuery.startsWith('nbds')
      ? `nbds+unix://alice@/?socket=${sock}${uriQuery.slice(4)}`
      : `nbd+unix:///?socket=${sock}${uriQuery}`;
    const r = spawnSync('/usr/bin/nbdinfo', ['--size', uri], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr, `${server} ${line.join(' ')}`).toBe('');
    return r.stdout;
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
}

maybe("nbdkit's man-page examples with nbdserve in place of nbdkit", () => {
  ensureBuilt();
  const cwd = join(top, 'listen');
  mkdirSync(cwd);
  writeFileSync(join(cwd, 'disk.img'), Buffer.alloc(1 << 20, 7));
  mkdirSync(join(cwd, 'keys'));
  spawnSync('/usr/bin/psktool', ['-u', 'alice', '-p', join(cwd, 'keys', 'keys.psk')]);

  // [the line after `nbdkit`, the libnbd URI query needed to reach it, the size it serves]
  const LINES: Array<[string[], string, string]> = [
    [['memory', '1G'], '', '1073741824\n'],                               // nbdkit-memory-plugin(1)
    [['memory', '1T'], '', '1099511627776\n'],                            // nbdkit(1)
    [['file', 'disk.img'], '', '1048576\n'],                              // nbdkit(1), nbdkit-file-plugin(1)
    [['file', 'file=disk.img'], '', '1048576\n'],                         // nbdkit(1)
    [['--tls=require', `--tls-psk=${join(cwd, 'keys', 'keys.psk')}`, 'file', 'disk.img'],  // nbdkit-tls(1), key file in our temp dir
      `nbds&tls-psk-file=${join(cwd, 'keys', 'keys.psk')}`, '1048576\n'],
  ];
  it.each(LINES)('nbdkit %j', async (line, query, want) => {
    for (const server of Object.keys(SERVERS)) expect(await sizeOf(server, line, cwd, query)).toBe(want);
  });

  it("nbdkit -U - PLUGIN --run 'qemu-img convert $nbd disk.img' (nbdkit-captive(1), pattern as the plugin)", () => {
    const images: Buffer[] = [];
    for (const [server, argv] of Object.entries(SERVERS)) {
      const dir = join(top, `captive-${server}`);
      mkdirSync(dir);
      const [cmd, ...pre] = argv;
      const r = spawnSync(cmd!, [...pre, '-U', '-', 'pattern', '4M', '--run', 'qemu-img convert $nbd disk.img'],
        { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${server}: ${r.stderr}`).toBe(0);
      images.push(readFileSync(join(dir, 'disk.img')));
    }
    expect(images[0]!.length).toBe(4 << 20);
    expect(images[0]!.equals(images[1]!)).toBe(true);
  });

  it('nbdkit --exit-with-parent --version && echo "supported" (nbdkit-captive(1))', () => {
    const r = spawnSync('sh', ['-c', `"$0" "$1" --exit-with-parent --version && echo "supported"`, process.execPath, NBDSERVE],
      { encoding: 'utf8', timeout: 30_000 });
    expect(r.stdout).toMatch(/^nbdserve .*\nsupported\n$/);
  });
});

describe('nbdserve command line (yargs)', () => {
  it('--help is generated from the option table and lists the backends', () => {
    ensureBuilt();
    const r = spawnSync(process.execPath, [NBDSERVE, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/-U, --unix/);
    expect(r.stdout).toMatch(/--tls-psk/);
    expect(r.stdout).toMatch(/backends: memory SIZE/);
  });
  it.each([
    [['--bogus', 'memory', '1G'], /^nbdserve: usage: unknown option: bogus\n$/],
    [['-U'], /^nbdserve: usage: Not enough arguments following: U\n$/],
    [['-p', '70000', 'memory', '1G'], /^nbdserve: usage: bad port '70000'\n$/],
    [['--tls=maybe', 'memory', '1G'], /^nbdserve: usage: --tls must be off, on or require, got 'maybe'\n$/],
    [['-U', '-'], /^nbdserve: usage: no backend given\n$/],
  ])('%j: one line, exit 1', (args, line) => {
    const r = spawnSync(process.execPath, [NBDSERVE, ...args], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toMatch(line);
    expect(r.status).toBe(1);
  });
});
