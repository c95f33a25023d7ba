// The harness end to end on a real server: the JSON it writes, and that ^C leaves no
// server and no temp file behind. No figure is asserted: speed belongs to the bench itself.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requireBinaries } from './helpers/binaries.js';

const repoRoot = join(import.meta.dirname, '..');
const runMjs = join(repoRoot, 'bench/run.mjs');
const haveTools = requireBinaries('/usr/bin/nbdkit', '/usr/bin/nbdcopy', '/usr/bin/time');

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-harness-'));
  dirs.push(dir);
  return dir;
}

/** Processes whose command line mentions `text` (our private temp dir). */
function processesMentioning(text: string): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((line) => line.includes(text) && !line.includes('ps -eo'));
}

describe.skipIf(!haveTools)('bench/run.mjs on nbdkit', () => {
  it('writes a result file with machine, versions, exact commands and summaries', () => {
    const dir = freshDir();
    const work = join(dir, 'work');
    spawnSync('mkdir', [work]);
    const json = join(dir, 'result.json');
    const out = spawnSync(
      process.execPath,
      [runMjs, '--quick', '--scenario', 'holes-null', '--tool', 'libnbd', '--runs', '1', '--no-warmup', '--json', json],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, BENCH_TMPDIR: work } },
    );
    expect(out.stderr).toContain('holes-null: all-hole memory disk to null:, 64 GiB, server nbdkit');
    expect(out.status, out.stderr).toBe(0);

    const result = JSON.parse(readFileSync(json, 'utf8'));
    expect(result.schema).toBe('nbd-toolkit-bench/1');
    expect(result.machine).toMatchObject({ cpus: expect.any(Number), node: process.version });
    expect(result.tools.libnbd.copy).toMatchObject({ program: '/usr/bin/nbdcopy', available: true });
    expect(result.tools.libnbd.copy.version).toMatch(/^nbdcopy \d/);
    expect(result.tools.server.kind).toBe('nbdkit');

    const [scenario] = result.scenarios;
    expect(scenario).toMatchObject({ name: 'holes-null', bytes: 64 * 2 ** 30, kind: 'copy' });
    expect(scenario.server.commands[0]).toEqual(expect.arrayContaining(['/usr/bin/nbdkit', 'memory', 'size=64G']));
    const [row] = scenario.rows;
    expect(row.tool).toBe('libnbd');
    expect(row.command[0]).toBe('/usr/bin/nbdcopy');
    expect(row.command.at(-1)).toBe('null:');
    expect(row.runs).toHaveLength(1);
    expect(row.runs[0]).toMatchObject({ ok: true, exitCode: 0 });
    expect(row.runs[0].maxRssKb).toBeGreaterThan(0);
    expect(row.runs[0].serverCpuMs).toBeGreaterThanOrEqual(0);
    expect(row.summary.runs).toBe(1);

    // Servers stopped and data deleted: the temp root is gone.
    expect(readdirSync(work)).toEqual([]);
  });

  it('reaps its servers and removes its temp dir on ^C', async () => {
    const dir = freshDir();
    const child = spawn(process.execPath, [runMjs, '--scenario', 'latency', '--tool', 'libnbd', '--runs', '50'], {
      env: { ...process.env, BENCH_TMPDIR: dir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    const started = new Promise<void>((resolve) => {
      child.stderr.on('data', (chunk: string) => {
        stderr += chunk;
        // Once the smoke run is over, the latency scenario's server starts.
        if (/libnbd info:/.test(stderr)) resolve();
      });
    });
    // 'close', not 'exit': the last stderr bytes can still be in the pipe when 'exit' fires.
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    await started;
    // Wait until the scenario's server is up, then interrupt mid-scenario.
    for (let i = 0; i < 200 && !processesMentioning(dir).some((line) => line.includes('nbdkit')); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(processesMentioning(dir).some((line) => line.includes('nbdkit'))).toBe(true);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('bench: SIGINT: stopping servers and removing temp files');
    // The bench SIGKILLs every process group it started before exiting, but a killed process
    // takes a moment to disappear on a busy machine: only one still there after 10 s leaked.
    for (let i = 0; i < 400 && processesMentioning(dir).length > 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(processesMentioning(dir)).toEqual([]);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });
});
