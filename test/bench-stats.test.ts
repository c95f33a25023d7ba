// Unit tests of the bench harness's pure figures: statistics, sizes, GNU time parsing.
import { describe, expect, it } from 'vitest';
import { maximum, median, minimum, percentChange, ratio, summarizeRuns, type Run } from '../bench/lib/stats.mjs';
import { formatBytes, parseSize, sizeArg } from '../bench/lib/sizes.mjs';
import { parseTimeOutput, TIME_FORMAT } from '../bench/lib/time-format.mjs';
import { reasonFromStderr } from '../bench/lib/measure.mjs';
import { scenarioRatios, startupFigures } from '../bench/lib/results.mjs';
import { cpuMsFromStat, processesCpuMs } from '../bench/lib/proc-cpu.mjs';

const run = (wallMs: number, extra: Partial<Run> = {}): Run => ({
  ok: true,
  wallMs,
  userMs: wallMs / 2,
  sysMs: wallMs / 4,
  maxRssKb: 1000 + wallMs,
  ...extra,
});

describe('median, min, max', () => {
  it('takes the middle of an odd list regardless of order', () => {
    expect(median([5, 1, 3])).toBe(3);
  });
  it('averages the two middle values of an even list', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
  it('does not reorder the caller’s array', () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
  it('says null for no samples instead of inventing 0', () => {
    expect(median([])).toBeNull();
    expect(minimum([])).toBeNull();
    expect(maximum([])).toBeNull();
  });
  it('finds extremes', () => {
    expect(minimum([3, 1, 2])).toBe(1);
    expect(maximum([3, 1, 2])).toBe(3);
  });
});

describe('summarizeRuns', () => {
  it('summarises wall, cpu, rss and throughput of the successful runs only', () => {
    const summary = summarizeRuns([run(200), run(100), run(300), run(50, { ok: false })], 2 ** 30);
    expect(summary).toEqual({
      runs: 3,
      failed: 1,
      medianWallMs: 200,
      minWallMs: 100,
      maxWallMs: 300,
      medianCpuMs: 150, // (200/2 + 200/4)
      maxRssKb: 1300,
      medianServerCpuMs: null,
      bytesPerSecond: 2 ** 30 * 5, // 1 GiB in 0.2 s
    });
  });
  it('reports null CPU and RSS when GNU time was not there', () => {
    const summary = summarizeRuns([run(100, { userMs: null, sysMs: null, maxRssKb: null })], 100);
    expect(summary.medianCpuMs).toBeNull();
    expect(summary.maxRssKb).toBeNull();
    expect(summary.bytesPerSecond).toBe(1000);
  });
  it('has no throughput for a job without bytes (nbdinfo) or without a good run', () => {
    expect(summarizeRuns([run(10)], 0).bytesPerSecond).toBeNull();
    const none = summarizeRuns([run(10, { ok: false })], 100);
    expect(none.runs).toBe(0);
    expect(none.medianWallMs).toBeNull();
    expect(none.bytesPerSecond).toBeNull();
  });
});

describe('server CPU from /proc/PID/stat', () => {
  it('adds utime and stime, counting fields from the last parenthesis', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = '1234 (nbd kit) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 17 0';
    expect(cpuMsFromStat(stat, 100)).toBe(3250);
    expect(cpuMsFromStat('garbage', 100)).toBeNull();
  });
  it('reads this very process, and says null for a process that is gone', () => {
    expect(processesCpuMs([process.pid])).toBeGreaterThanOrEqual(0);
    expect(processesCpuMs([2 ** 30])).toBeNull();
  });
  it('summarises the server CPU of the runs that have it', () => {
    const summary = summarizeRuns([run(100, { serverCpuMs: 40 }), run(100, { serverCpuMs: 60 }), run(100, { serverCpuMs: 50 })], 1);
    expect(summary.medianServerCpuMs).toBe(50);
  });
});

describe('ratio and percentChange', () => {
  it('divides ours by theirs', () => {
    expect(ratio(1, 2)).toBe(0.5);
    expect(ratio(3, 2)).toBe(1.5);
  });
  it('is null when a side is missing or zero', () => {
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(1, undefined)).toBeNull();
    expect(ratio(1, 0)).toBeNull();
  });
  it('gives signed percentages', () => {
    expect(percentChange(100, 110)).toBeCloseTo(10);
    expect(percentChange(100, 80)).toBeCloseTo(-20);
    expect(percentChange(0, 5)).toBeNull();
  });
  it('builds scenario ratios against each measured tool, skipping skipped ones', () => {
    const summary = (wall: number, cpu: number) => ({ medianWallMs: wall, medianCpuMs: cpu });
    const ratios = scenarioRatios([
      { tool: 'ours', summary: summary(300, 600) },
      { tool: 'libnbd', summary: summary(200, 300) },
      { tool: 'qemu-img', skipped: 'no pipe' },
    ]);
    expect(ratios).toEqual({ libnbd: { wall: 1.5, cpu: 2 } });
    expect(scenarioRatios([{ tool: 'libnbd', summary: summary(1, 1) }])).toEqual({ libnbd: { wall: null, cpu: null } });
  });
  it('judges a start-up-bound row as ours minus node -e 0 against libnbd', () => {
    const summary = (wall: number) => ({ medianWallMs: wall });
    const rows = [
      { tool: 'ours', summary: summary(60) },
      { tool: 'libnbd', summary: summary(20) },
    ];
    expect(startupFigures(rows, { medianWallMs: 35 })).toEqual({ nodeMs: 35, oursMinusNodeMs: 25, libnbdMs: 20, ratio: 1.25 });
    expect(startupFigures([rows[1]!], { medianWallMs: 35 })).toBeNull();
    expect(startupFigures([rows[0]!], { medianWallMs: 35 })?.ratio).toBeNull();
  });
  it('leaves out CPU ratios made of a few 10 ms ticks', () => {
    const summary = (wall: number, cpu: number) => ({ medianWallMs: wall, medianCpuMs: cpu });
    const ratios = scenarioRatios([
      { tool: 'ours', summary: summary(280, 130) },
      { tool: 'libnbd', summary: summary(40, 10) },
    ]);
    expect(ratios).toEqual({ libnbd: { wall: 7, cpu: null } });
  });
});

describe('sizes', () => {
  it('parses binary suffixes like nbdkit', () => {
    expect(parseSize('4G')).toBe(4 * 2 ** 30);
    expect(parseSize('512m')).toBe(512 * 2 ** 20);
    expect(parseSize('64GiB')).toBe(64 * 2 ** 30);
    expect(parseSize('1048576')).toBe(2 ** 20);
    expect(() => parseSize('4X')).toThrow(/not a size/);
  });
  it('spells sizes exactly for server command lines', () => {
    expect(sizeArg(4 * 2 ** 30)).toBe('4G');
    expect(sizeArg(1536 * 2 ** 20)).toBe('1536M');
    expect(sizeArg(1000)).toBe('1000');
  });
  it('formats sizes for people', () => {
    expect(formatBytes(64 * 2 ** 30)).toBe('64 GiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.50 GiB');
    expect(formatBytes(512)).toBe('512 B');
  });
});

describe('GNU time output', () => {
  it('asks for elapsed, user, sys and peak RSS', () => {
    expect(TIME_FORMAT).toBe('%e %U %S %M');
  });
  it('parses a successful run', () => {
    expect(parseTimeOutput('2.13 1.50 0.61 81234\n')).toEqual({ elapsedMs: 2130, userMs: 1500, sysMs: 610, maxRssKb: 81234 });
  });
  it('skips the status line GNU time adds for a failed command', () => {
    const parsed = parseTimeOutput('Command exited with non-zero status 1\n0.01 0.00 0.00 7984\n');
    expect(parsed).toEqual({ elapsedMs: 10, userMs: 0, sysMs: 0, maxRssKb: 7984 });
  });
  it('returns null for anything else', () => {
    expect(parseTimeOutput('')).toBeNull();
    expect(parseTimeOutput('Command terminated by signal 9')).toBeNull();
  });
});

describe('reasonFromStderr', () => {
  it('prefers the tool’s one-line error', () => {
    expect(reasonFromStderr('nbdcopy: nbd+unix:///?socket=x: connect: Connection refused\n')).toBe(
      'nbdcopy: nbd+unix:///?socket=x: connect: Connection refused',
    );
  });
  it('digs the error out of a Node crash report', () => {
    const crash = [
      'node:internal/modules/esm/resolve:283',
      '    throw new ERR_MODULE_NOT_FOUND(',
      '          ^',
      '',
      "Error [ERR_MODULE_NOT_FOUND]: Cannot find module '/repo/dist/cli/nbdcopy.js' imported from /repo/bin/nbdcopy",
      '    at finalizeResolution (node:internal/modules/esm/resolve:257:11)',
    ].join('\n');
    expect(reasonFromStderr(crash)).toMatch(/^Error \[ERR_MODULE_NOT_FOUND\]: Cannot find module/);
  });
  it('ignores GNU time’s status line', () => {
    expect(reasonFromStderr('Command exited with non-zero status 1\n')).toBe('');
  });
});
