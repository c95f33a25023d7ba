// nbdcopy's and nbdinfo's command-line surface next to libnbd's tools: the option lists bash
// completion reads, getopt's messages for ambiguous options, and the summary `nbdcopy -v`
// starts with. Each case runs both tools on the same arguments and compares the lines.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';

const OUR_COPY = join(REPO, 'bin', 'nbdcopy');
const OUR_INFO = join(REPO, 'bin', 'nbdinfo');
const have = requireBinaries('/usr/bin/nbdcopy', '/usr/bin/nbdinfo', '/usr/bin/nbdkit');
const maybe = have ? describe : describe.skip;

const dir = makeTempDir('nbdcopy-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(bin: string, args: string[], input?: string): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(bin, args, { encoding: 'utf8', cwd: dir, timeout: 30_000, maxBuffer: 64 << 20, ...(input === undefined ? {} : { input }) });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** The first stderr line without the program name, which libnbd prints as its argv[0]. */
function firstError(stderr: string): string {
  return (stderr.split('\n')[0] ?? '').replace(/^[^:]*: /, '');
}

maybe('option lists (bash completion)', () => {
  // Options libnbd 1.14 does not have: libnbd 1.24's --blkhash and --blkhash-file, and all of
  // ours (the lists complete this tool's options): libnbd's lines come in libnbd's order.
  const newer = {
    '--long-options': [
      '--batch', '--blkhash', '--blkhash-file', '--checkpoint', '--dirty-bitmap', '--fail-fast', '--jobs', '--progress-json',
      '--rate', '--retries', '--retry-delay', '--shard', '--verify',
    ],
    '--short-options': ['-j'],
  };
  it.each(['--long-options', '--short-options'] as const)('nbdcopy %s prints what libnbd prints, and ours', (flag) => {
    const ours = run(OUR_COPY, [flag]);
    const theirs = run('/usr/bin/nbdcopy', [flag]);
    expect(theirs.status).toBe(0);
    expect(ours.status).toBe(0);
    expect(ours.stderr).toBe('');
    const lines = ours.stdout.split('\n');
    expect(lines.filter((l) => !newer[flag].includes(l)).join('\n')).toBe(theirs.stdout);
    expect(lines.filter((l) => newer[flag].includes(l)).sort()).toEqual(newer[flag]);
  });
});

maybe('ambiguous and unknown long options, as getopt_long reports them', () => {
  // --ve and --d are left out: --verify and --dirty-bitmap (ours) add to their possibilities.
  it.each([['--s=1'], ['--re=1'], ['--t'], ['--re'], ['--foo=1'], ['--pr'], ['--n']])('nbdcopy %s', (opt) => {
    const ours = run(OUR_COPY, [opt, 'a', 'b']);
    const theirs = run('/usr/bin/nbdcopy', [opt, 'a', 'b']);
    expect(ours.status).toBe(theirs.status);
    expect(firstError(ours.stderr)).toBe(firstError(theirs.stderr));
    expect(ours.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
  // --c, --h and --i are left out: later libnbd's --cannot, --has and --isnt change them.
  it.each([['--s=x'], ['--s'], ['--co'], ['--n'], ['--no-c'], ['--l'], ['--bogus=3']])('nbdinfo %s', (opt) => {
    const ours = run(OUR_INFO, [opt, 'nbd://localhost:1']);
    const theirs = run('/usr/bin/nbdinfo', [opt, 'nbd://localhost:1']);
    expect(ours.status).toBe(theirs.status);
    expect(firstError(ours.stderr)).toBe(firstError(theirs.stderr));
  });
});

/** The libnbd summary lines of `nbdcopy -v`. */
function summary(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^nbdcopy: (src|dst): |^nbdcopy: connections=/.test(l));
}

maybe('nbdcopy -v starts with libnbd\'s summary', () => {
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1 << 20, 7));
  const cases: Array<[string, string[], { stdin?: boolean }]> = [
    ['nbd -> null:', ['--', '[', 'nbdkit', 'memory', '1M', ']', 'null:'], {}],
    ['nbd -> new file', ['--', '[', 'nbdkit', 'memory', '1M', ']', 'OUT'], {}],
    ['nbd -> nbd', ['--', '[', 'nbdkit', 'memory', '1M', ']', '[', 'nbdkit', 'memory', '2M', ']'], {}],
    ['file -> pipe', [disk, '-'], {}],
    ['pipe -> null:', ['-', 'null:'], { stdin: true }],
    ['file -> nbd, 1 thread', ['-T', '1', disk, '--', '[', 'nbdkit', 'memory', '1M', ']'], {}],
    ['file -> null:', [disk, 'null:'], {}],
    ['file -> null:, -C 3 -T 8', ['-C', '3', '-T', '8', disk, 'null:'], {}],
  ];
  it.each(cases)('%s', (_name, args, how) => {
    rmSync(join(dir, 'OUT'), { force: true });
    const input = how.stdin ? 'x'.repeat(100_000) : undefined;
    const theirs = summary(run('/usr/bin/nbdcopy', ['-v', ...args], input).stderr);
    rmSync(join(dir, 'OUT'), { force: true });
    const oursRun = run(OUR_COPY, ['-v', ...args], input);
    expect(oursRun.status, oursRun.stderr).toBe(0);
    const ours = summary(oursRun.stderr);
    expect(theirs).toHaveLength(5);
    // Ours first, before our own details.
    expect(oursRun.stderr.split('\n').slice(0, 5)).toEqual(ours);
    expect(ours).toEqual(theirs);
  });
});
