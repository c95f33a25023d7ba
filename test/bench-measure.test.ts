// One measured run: exit status, the failure reason, stdout counting, timeouts, and the
// figures GNU time adds. Asserts no durations: only that figures are present and sane.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { haveGnuTime, runMeasured } from '../bench/lib/measure.mjs';

const dir = mkdtempSync(join(tmpdir(), 'bench-measure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

if (!existsSync('/usr/bin/time')) {
  const msg = 'required binary /usr/bin/time (Debian package "time") is not installed';
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: failing instead of skipping)`);
  console.warn(`\n*** WARNING: ${msg}; CPU/RSS assertions are skipped ***\n`);
}

describe('runMeasured', () => {
  it('measures a successful run, with CPU and RSS from GNU time', async () => {
    const run = await runMeasured({ argv: ['true'], tmpDir: dir, timeoutMs: 10_000 });
    expect(run).toMatchObject({ ok: true, exitCode: 0 });
    expect(run.error).toBeUndefined();
    expect(run.wallMs).toBeGreaterThan(0);
    if (haveGnuTime()) {
      expect(run.userMs).toBeGreaterThanOrEqual(0);
      expect(run.sysMs).toBeGreaterThanOrEqual(0);
      expect(run.maxRssKb).toBeGreaterThan(0);
    }
  });

  it('fails a run that exits non-zero, with the tool’s own one-line reason', async () => {
    const run = await runMeasured({
      argv: ['sh', '-c', 'echo "some noise" >&2; echo "nbdcopy: nbd://x: connect: refused" >&2; exit 1'],
      tmpDir: dir,
      timeoutMs: 10_000,
    });
    expect(run).toMatchObject({ ok: false, exitCode: 1, error: 'nbdcopy: nbd://x: connect: refused' });
  });

  it('reports a program that does not exist', async () => {
    const run = await runMeasured({ argv: [join(dir, 'no-such-tool')], tmpDir: dir, timeoutMs: 10_000 });
    expect(run.ok).toBe(false);
    expect(run.error).toBeTruthy();
  });

  it('counts what the tool writes to stdout through a pipe', async () => {
    const run = await runMeasured({ argv: ['head', '-c', '3000000', '/dev/zero'], tmpDir: dir, stdout: 'count', timeoutMs: 10_000 });
    expect(run).toMatchObject({ ok: true, stdoutBytes: 3_000_000 });
  });

  it('kills a run that outlives its timeout, children included', async () => {
    const run = await runMeasured({ argv: ['sh', '-c', 'sleep 30 & sleep 30; wait'], tmpDir: dir, timeoutMs: 300 });
    expect(run).toMatchObject({ ok: false, error: 'timed out after 0.3 s' });
  });
});
