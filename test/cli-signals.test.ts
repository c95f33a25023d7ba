// SIGINT and SIGTERM end nbdcopy and nbdinfo as they end libnbd's C tools: after clean-up
// (the `[ CMD ]` server stopped and reaped) the process dies BY the signal, so a shell sees
// 130/143 and `while ...; do nbdcopy ...; done` stops on ^C. A signal the caller left ignored
// (a script's background job, a Python subprocess with SIG_IGN) stays ignored.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processGone } from './helpers/servers.js';
import { REPO } from './helpers/build.js';
import { requireBinary } from './helpers/binaries.js';

const NBDCOPY = join(REPO, 'bin', 'nbdcopy');
const NBDINFO = join(REPO, 'bin', 'nbdinfo');
const have = requireBinary('nbdkit');

interface Job {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(file: string, args: string[]): Job {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': the last stderr line can still be in the pipe when 'exit' fires.
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, ended };
}

async function until(what: string, test: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A 1G source whose reads take 20 ms each: the copy is in flight for minutes. */
const SLOW_COPY = ['--progress=1', '--', '[', 'nbdkit', '--filter=delay', 'pattern', '1G', 'delay-read=20ms', ']', 'null:'];

describe.skipIf(!have)('nbdcopy and nbdinfo end by the signal', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('nbdcopy, %s mid-copy: server reaped, death by the signal', async (signal) => {
    const job = start(NBDCOPY, SLOW_COPY);
    await until('the copy to start', () => job.stdout().startsWith('0/100\n'));
    const servers = childrenOf(job.child.pid!);
    expect(servers.length).toBeGreaterThan(0);
    job.child.kill(signal);
    const end = await job.ended;
    expect(end).toEqual({ code: null, signal });
    expect(job.stderr()).toBe(`nbdcopy: interrupted by ${signal}\n`);
    // Reaped before we died: gone now, not merely signalled.
    for (const pid of servers) expect(processGone(pid)).toBe(true);
  }, 40_000);

  it('nbdinfo, SIGTERM during a slow --map: server reaped, death by SIGTERM', async () => {
    const job = start(NBDINFO, ['--map', '--', '[', 'nbdkit', '--filter=delay', 'sparse-random', '1G', 'delay-extents=30', ']']);
    await until('the server to start', () => childrenOf(job.child.pid!).length > 0);
    const servers = childrenOf(job.child.pid!);
    await new Promise((r) => setTimeout(r, 500));
    job.child.kill('SIGTERM');
    const end = await job.ended;
    expect(end).toEqual({ code: null, signal: 'SIGTERM' });
    // The server may say on its stderr (ours too) that it was stopped mid-request.
    expect(job.stderr()).toMatch(/^nbdinfo: interrupted by SIGTERM\n/);
    for (const pid of servers) expect(processGone(pid)).toBe(true);
  }, 40_000);

  it('a SIGINT ignored by the caller stays ignored; SIGTERM still stops the copy', async () => {
    // sh execs nbdcopy with SIGINT ignored, as for `nbdcopy ... &` in a script.
    const job = start('/bin/sh', ['-c', `trap "" INT; exec ${NBDCOPY} "$@"`, 'sh', ...SLOW_COPY]);
    await until('the copy to start', () => job.stdout().startsWith('0/100\n'));
    job.child.kill('SIGINT');
    const early = await Promise.race([job.ended, new Promise((r) => setTimeout(() => r('running'), 1500))]);
    expect(early).toBe('running');
    expect(job.stderr()).toBe('');
    job.child.kill('SIGTERM');
    expect(await job.ended).toEqual({ code: null, signal: 'SIGTERM' });
  }, 40_000);

  it('nbdinfo keeps an ignored SIGINT ignored too', async () => {
    const job = start('/bin/sh', ['-c', `trap "" INT; exec ${NBDINFO} "$@"`, 'sh', '--map', '--', '[', 'nbdkit', '--filter=delay', 'memory', '1G', 'delay-extents=30', ']']);
    await until('the server to start', () => childrenOf(job.child.pid!).length > 0);
    job.child.kill('SIGINT');
    const early = await Promise.race([job.ended, new Promise((r) => setTimeout(() => r('running'), 1500))]);
    expect(early).toBe('running');
    job.child.kill('SIGTERM');
    expect(await job.ended).toEqual({ code: null, signal: 'SIGTERM' });
  }, 40_000);
});
