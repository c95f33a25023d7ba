// Baseline comparison of bench results, and the exit code a CI gate sees.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareResults, DEFAULT_NOISE_PCT, EXIT_REGRESSION, formatComparison } from '../bench/lib/baseline.mjs';

const repoRoot = join(import.meta.dirname, '..');
const sample = () => JSON.parse(readFileSync(join(repoRoot, 'bench/fixtures/sample-result.json'), 'utf8'));

type Json = ReturnType<typeof sample>;

/** A copy of the sample where one tool's median in one scenario is scaled. */
function scaled(result: Json, scenario: string, tool: string, factor: number): Json {
  const copy = structuredClone(result);
  const row = copy.scenarios.find((s: { name: string }) => s.name === scenario).rows.find((r: { tool: string }) => r.tool === tool);
  row.summary.medianWallMs *= factor;
  return copy;
}

describe('compareResults', () => {
  it('calls everything the same when nothing changed, and exits 0 even with a threshold', () => {
    const comparison = compareResults(sample(), sample(), { thresholdPct: 10 });
    const verdicts = comparison.entries.map((entry) => `${entry.scenario}/${entry.tool}:${entry.verdict}`);
    expect(verdicts.filter((v) => !v.endsWith(':same'))).toEqual(['nbd-stdout/qemu-img:n/a', 'info-json/ours:n/a']);
    expect(comparison.regressions).toEqual([]);
    expect(comparison.exitCode).toBe(0);
  });

  it('flags our slower row and gates on it only when a threshold is given', () => {
    const slower = scaled(sample(), 'pattern-null', 'ours', 1.2);
    const informative = compareResults(sample(), slower);
    const entry = informative.entries.find((e) => e.scenario === 'pattern-null' && e.tool === 'ours');
    expect(entry).toMatchObject({ beforeMs: 450, afterMs: 540, verdict: 'slower' });
    expect(entry?.changePct).toBeCloseTo(20);
    expect(informative.bandPct).toBe(DEFAULT_NOISE_PCT);
    expect(informative.exitCode).toBe(0);

    expect(compareResults(sample(), slower, { thresholdPct: 10 }).exitCode).toBe(EXIT_REGRESSION);
    // 20% slower is within a 25% threshold.
    const tolerant = compareResults(sample(), slower, { thresholdPct: 25 });
    expect(tolerant.exitCode).toBe(0);
    expect(tolerant.entries.find((e) => e.scenario === 'pattern-null' && e.tool === 'ours')?.verdict).toBe('same');
  });

  it('reports faster rows and never gates on them', () => {
    const faster = scaled(sample(), 'pattern-null', 'ours', 0.5);
    const comparison = compareResults(sample(), faster, { thresholdPct: 10 });
    expect(comparison.entries.find((e) => e.scenario === 'pattern-null' && e.tool === 'ours')?.verdict).toBe('faster');
    expect(comparison.exitCode).toBe(0);
  });

  it('does not gate on the other tools: they are the yardstick', () => {
    const theirsSlower = scaled(sample(), 'pattern-null', 'libnbd', 2);
    const comparison = compareResults(sample(), theirsSlower, { thresholdPct: 10 });
    expect(comparison.entries.find((e) => e.tool === 'libnbd' && e.scenario === 'pattern-null')?.verdict).toBe('slower');
    expect(comparison.exitCode).toBe(0);
    // ...but the same-run ratio shows that ours now looks better relative to libnbd.
    const ours = comparison.entries.find((e) => e.tool === 'ours' && e.scenario === 'pattern-null');
    expect(ours?.ratioBefore).toBeCloseTo(0.9);
    expect(ours?.ratioAfter).toBeCloseTo(0.45);
  });

  it('counts a row of ours that no longer runs as a regression', () => {
    const broken = sample();
    broken.scenarios[0].rows[0] = { tool: 'ours', program: 'x', skipped: 'smoke check failed' };
    const comparison = compareResults(sample(), broken, { thresholdPct: 10 });
    expect(comparison.regressions.map((e) => `${e.scenario}/${e.verdict}`)).toEqual(['pattern-null/gone']);
    expect(comparison.exitCode).toBe(EXIT_REGRESSION);
  });

  it('calls rows that only exist now new', () => {
    const before = sample();
    before.scenarios = before.scenarios.slice(0, 1);
    const comparison = compareResults(before, sample());
    expect(comparison.entries.filter((e) => e.verdict === 'new').map((e) => `${e.scenario}/${e.tool}`)).toEqual([
      'nbd-stdout/ours',
      'nbd-stdout/libnbd',
      'info-json/libnbd',
    ]);
  });

  it('prints one line per row and a verdict line', () => {
    const text = formatComparison(compareResults(sample(), scaled(sample(), 'nbd-stdout', 'ours', 1.5), { thresholdPct: 10 }));
    expect(text).toMatch(/^scenario\s+tool\s+before\s+after\s+change\s+verdict/);
    expect(text).toMatch(/nbd-stdout\s+ours\s+2\.000 s\s+3\.000 s\s+\+50\.0%\s+slower/);
    expect(text.trim().split('\n').at(-1)).toBe('1 regression of ours beyond 10%: nbd-stdout');
  });
});

describe('bench/run.mjs --baseline --current (no servers, no timing)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-baseline-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const runBench = (...args: string[]) =>
    spawnSync(process.execPath, [join(repoRoot, 'bench/run.mjs'), ...args], { encoding: 'utf8', timeout: 30_000 });

  it('exits 2 on a regression beyond the threshold, 0 within it', () => {
    const base = join(dir, 'base.json');
    const slow = join(dir, 'slow.json');
    writeFileSync(base, JSON.stringify(sample()));
    writeFileSync(slow, JSON.stringify(scaled(sample(), 'pattern-null', 'ours', 1.3)));

    const gated = runBench('--baseline', base, '--current', slow, '--threshold', '10');
    expect(gated.status).toBe(2);
    expect(gated.stdout).toMatch(/pattern-null\s+ours\s+0\.450 s\s+0\.585 s\s+\+30\.0%\s+slower/);

    const lenient = runBench('--baseline', base, '--current', slow, '--threshold', '50');
    expect(lenient.status).toBe(0);
    expect(lenient.stdout).toContain('no regression of ours beyond 50%');
  });

  it('renders Markdown and SVG from a saved result', () => {
    const base = join(dir, 'base.json');
    writeFileSync(base, JSON.stringify(sample()));
    const svg = join(dir, 'chart.svg');
    const out = runBench('--current', base, '--baseline', base, '--markdown', '--svg', svg);
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('| pattern-null | 0.90x | 1.50x | 1.02x |');
    expect(readFileSync(svg, 'utf8')).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it('rejects bad options with one line and the usage', () => {
    const out = runBench('--threshold', '5');
    expect(out.status).toBe(1);
    expect(out.stderr.split('\n')[0]).toBe('bench: --threshold needs --baseline FILE');
    expect(execFileSync(process.execPath, [join(repoRoot, 'bench/run.mjs'), '--list'], { encoding: 'utf8' })).toMatch(/^pattern-null /);
  });
});
