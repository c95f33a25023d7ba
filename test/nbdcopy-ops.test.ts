// nbdcopy's operational options end to end: --retries with nbdkit killed and restarted
// mid-copy (and a cutting proxy), --rate on a short real copy, -p and --progress-json output,
// --batch with --shard run as N processes, and one line + exit 1 for every bad value.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OUR_NBDCOPY } from './helpers/build.js';
import { copyThroughCrashes, opsSuite } from './helpers/ops-suite.js';
import { requireBinaries } from './helpers/binaries.js';
import { RestartableServer, startCuttingProxy } from './helpers/restartable-server.js';
import { expectOneLine, nbdcopy } from './helpers/nbdcopy-process.js';

const have = requireBinaries('nbdkit');
const MiB = 1 << 20;

const suite = opsSuite('nbdcopy-ops-');
const { servers, proxies } = suite;

const same = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b));

describe('bad values: one line naming the option or the batch line, exit 1, nothing written', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--rate=0'], /^nbdcopy: --rate: must be at least 1/],
    [['--rate=fast'], /^nbdcopy: --rate: could not parse size/],
    [['--retries=-1'], /^nbdcopy: --retries: expected a number/],
    [['--retry-delay=soon'], /^nbdcopy: --retry-delay: could not parse duration/],
    [['--progress-json=97'], /^nbdcopy: --progress-json=97: file descriptor 97 is not open/],
    [['--jobs=2'], /^nbdcopy: --jobs: only with --batch/],
    [['--shard=3/2'], /^nbdcopy: --shard: I must be between 0 and N-1/],
  ];
  for (const [opts, message] of cases) {
    it(opts.join(' '), async () => {
      const out = join(suite.dir, `bad-${opts[0]!.replace(/\W/g, '')}.img`);
      expectOneLine(await nbdcopy([...opts, suite.src, out]), message);
      expect(fs.existsSync(out)).toBe(false);
    });
  }

  const batches: Array<[string, string[], RegExp]> = [
    ['not JSON', ['{"source": "a", "destination":'], /^nbdcopy: batch line 2: not JSON/],
    ['a missing field', ['{"source": "SRC"}'], /^nbdcopy: batch line 2: missing "destination"/],
    ['a bad option value', ['{"source": "SRC", "destination": "OUT2", "options": {"rate": 0}}'], /^nbdcopy: batch line 2: --rate: must be at least 1/],
    ['a batch-only option', ['{"source": "SRC", "destination": "OUT2", "options": {"jobs": 2}}'], /^nbdcopy: batch line 2: --jobs applies to the whole batch/],
  ];
  for (const [what, lines, message] of batches) {
    it(`a batch line with ${what}: no copy starts, not even line 1's`, async () => {
      const out1 = join(suite.dir, `batch-${what.length}-1.img`);
      const text = [`{"source": "${suite.src}", "destination": "${out1}"}`, ...lines]
        .map((l) => l.replace('SRC', suite.src).replace('OUT2', join(suite.dir, 'never.img'))).join('\n');
      expectOneLine(await nbdcopy(['--batch=-'], text), message);
      expect(fs.existsSync(out1)).toBe(false);
    });
  }

  it('--batch with SOURCE and DESTINATION too, and a missing batch file', async () => {
    expectOneLine(await nbdcopy(['--batch=x.jsonl', suite.src, join(suite.dir, 'x.img')]), /^nbdcopy: --batch: SOURCE and DESTINATION come from the file/);
    expectOneLine(await nbdcopy([`--batch=${join(suite.dir, 'missing.jsonl')}`]), /^nbdcopy: --batch=.*missing\.jsonl: ENOENT/);
  });
});

describe.skipIf(!have)('--retries', () => {
  function fileServer(name: string): { server: RestartableServer; file: string } {
    const file = join(suite.dir, `${name}.img`);
    fs.copyFileSync(suite.src, file);
    // Slow reads, so the copy lasts long enough to be interrupted several times.
    const server = new RestartableServer(join(suite.dir, `${name}.sock`), ['--filter=delay', 'file', file, 'delay-read=10ms']);
    servers.push(server);
    return { server, file };
  }

  for (const seed of [1, 2]) {
    it(`nbdkit killed and restarted 3 times mid-copy (seed ${seed}): the copy is exact`, async () => {
      const { server } = fileServer(`kill${seed}`);
      await server.start();
      await copyThroughCrashes(server, server.uri, join(suite.dir, `kill${seed}.out`), suite.src, 3, seed);
    });
  }

  it('a proxy in front of nbdserve cutting every 2 MiB: the copy is exact', async () => {
    const file = join(suite.dir, 'proxied.img');
    fs.copyFileSync(suite.src, file);
    const server = new RestartableServer(join(suite.dir, 'nbdserve.sock'), ['file', file], 'nbdserve');
    servers.push(server);
    await server.start();
    const proxy = await startCuttingProxy(server.socket, join(suite.dir, 'proxy.sock'), 2 * MiB, 10);
    proxies.push(proxy);
    const out = join(suite.dir, 'proxied.out');
    const r = await nbdcopy(['--retries=4', '--retry-delay=10ms', `nbd+unix:///?socket=${join(suite.dir, 'proxy.sock')}`, out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(same(out, suite.src)).toBe(true);
    expect(proxy.cuts).toBeGreaterThanOrEqual(2);
  });

  it('a server that stays down with too few retries: one line, exit 1', async () => {
    const { server } = fileServer('down');
    await server.start();
    const out = join(suite.dir, 'down.out');
    const copying = nbdcopy(['-v', '--retries=2', '--retry-delay=10ms', '--request-size=64K', '-R', '2', server.uri, out]);
    await copying.copying;
    await server.kill();
    const r = await copying;
    expect(r.status).toBe(1);
    // -v adds its own lines (and the stack); the error line is among them.
    expect(r.stderr).toMatch(/^nbdcopy: .*gave up after 2 reconnection attempts/m);
  });

  it('without --retries a lost connection fails the copy as before', async () => {
    const { server } = fileServer('plain');
    await server.start();
    const copying = nbdcopy(['-v', '--request-size=64K', '-R', '2', server.uri, join(suite.dir, 'plain.out')]);
    await copying.copying;
    await server.kill();
    const r = await copying;
    expect(r.status).toBe(1);
    expect(r.stderr).not.toMatch(/reconnect/);
  });
});

describe('--rate and progress', () => {
  it('--rate=2M on 4 MiB takes about 2 s (generous bounds), bytes exact, JSON names the limit', async () => {
    const part = join(suite.dir, 'part.img');
    fs.writeFileSync(part, fs.readFileSync(suite.src).subarray(0, 4 * MiB));
    const out = join(suite.dir, 'rated.out');
    const r = await nbdcopy(['--rate=2M', '--progress-json=1', part, out]);
    expect(r.status).toBe(0);
    expect(same(out, part)).toBe(true);
    // The first request goes at once: 4 MiB at 2 MiB/s is at least 1.75 s of waiting.
    expect(r.ms).toBeGreaterThan(1600);
    expect(r.ms).toBeLessThan(15_000);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ event: 'done', bytes: 4 * MiB, bytes_read: 4 * MiB, bytes_written: 4 * MiB, rate_limit: 2 * MiB, status: 0 });
    for (const e of events.slice(0, -1)) expect(e['event']).toBe('progress');
  });

  it('--progress-json: a failed copy ends with an error event, and stderr has the line', async () => {
    const r = await nbdcopy(['--progress-json=1', join(suite.dir, 'nope.img'), join(suite.dir, 'nope.out')]);
    expect(r.status).toBe(1);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(last['event']).toBe('error');
    expect(String(last['message'])).toMatch(/nope\.img/);
    expectOneLine(r, /^nbdcopy: .*nope\.img/);
  });

  it('-p when stderr is not a terminal: plain lines, never \\r', async () => {
    const out = join(suite.dir, 'plain-p.out');
    const r = await nbdcopy(['-p', '--rate=4M', suite.src, out]);
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain('\r');
    const lines = r.stderr.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^nbdcopy: 100% 8\.0 MiB\/8\.0 MiB \S+ \S+\/s/);
    for (const l of lines) expect(l).toMatch(/^nbdcopy: \d+% /);
  });

  const haveScript = spawnSync('script', ['--version']).status === 0;
  it.skipIf(!haveScript)('-p in a 40-column terminal (script gives a pty): no frame wider than 39 columns', () => {
    const out = join(suite.dir, 'tty.out');
    const r = spawnSync('script', ['-q', '-e', '-c', `stty cols 40; "${OUR_NBDCOPY}" -p --rate=8M "${suite.src}" "${out}"`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(same(out, suite.src)).toBe(true);
    // Frames are separated by carriage returns and escape sequences.
    const frames = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '\r').split(/[\r\n]/).filter((f) => f.trim() !== '');
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(39);
    expect(frames.at(-1)).toMatch(/100%/);
  });
});

describe('--batch and --shard', () => {
  it('3 shards as 3 processes: every copy happens exactly once and is exact', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 7; i++) lines.push(JSON.stringify({ source: suite.src, destination: join(suite.dir, `batch${i}.out`), options: { 'request-size': '64K' } }));
    const file = join(suite.dir, 'jobs.jsonl');
    fs.writeFileSync(file, lines.join('\n') + '\n');
    const runs = await Promise.all([0, 1, 2].map((i) => nbdcopy([`--batch=${file}`, `--shard=${i}/3`, '-j', '2', '--progress-json=1'])));
    const seen: number[] = [];
    for (const r of runs) {
      expect(r.status).toBe(0);
      for (const l of r.stdout.trim().split('\n').filter((x) => x !== '')) {
        const e = JSON.parse(l) as { event: string; line: number };
        if (e.event === 'done') seen.push(e.line);
      }
    }
    expect(seen.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (let i = 0; i < 7; i++) expect(same(join(suite.dir, `batch${i}.out`), suite.src)).toBe(true);
  });

  it('a failed copy is reported, the others go on, exit 1; --fail-fast starts no more', async () => {
    const text = [
      JSON.stringify({ source: join(suite.dir, 'missing.img'), destination: join(suite.dir, 'f1.out') }),
      JSON.stringify({ source: suite.src, destination: join(suite.dir, 'f2.out') }),
    ].join('\n');
    const r = await nbdcopy(['--batch=-'], text);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/batch line 1: .*missing\.img/);
    expect(r.stderr).toMatch(/batch line 2: .* copied 8\.0 MiB/);
    expect(r.stderr).toMatch(/nbdcopy: 1 of 2 copies did not succeed\n$/);
    expect(same(join(suite.dir, 'f2.out'), suite.src)).toBe(true);
    const ff = await nbdcopy(['--batch=-', '--fail-fast'], text.replace('f2.out', 'f3.out'));
    expect(ff.status).toBe(1);
    expect(ff.stderr).toMatch(/batch line 2: not started \(--fail-fast\)/);
    expect(fs.existsSync(join(suite.dir, 'f3.out'))).toBe(false);
  });
});
