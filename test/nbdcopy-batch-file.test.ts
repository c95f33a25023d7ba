// The --batch file and --shard: lines become jobs (with their options as command-line words),
// every mistake names its line, and the N shards of a file split its lines exactly.
import { describe, expect, it } from 'vitest';
import { parseBatchFile, parseShard, selectShard } from '../src/cli/nbdcopy-batch-file.js';
import { parseDuration } from '../src/cli/duration.js';

describe('parseBatchFile', () => {
  it('reads one job per line, with blank lines counted in the line numbers', () => {
    const text = [
      '{"source": "a.img", "destination": "nbd://h/a"}',
      '',
      '{"source": ["nbdkit", "-r", "pattern", "1G"], "destination": "null:", "options": {"request-size": "1M", "flush": true, "allocated": false, "C": 2, "rate": 1048576}}',
    ].join('\n');
    expect(parseBatchFile(text, 'f')).toEqual([
      { line: 1, source: 'a.img', destination: 'nbd://h/a', optionWords: [] },
      {
        line: 3, source: ['nbdkit', '-r', 'pattern', '1G'], destination: 'null:',
        optionWords: ['--request-size=1M', '--flush', '-C2', '--rate=1048576'],
      },
    ]);
  });

  const bad: Array<[string, string]> = [
    ['{"source": "a"', 'batch line 2: not JSON'],
    ['{"source": "a"}', 'batch line 2: missing "destination"'],
    ['{"destination": "a"}', 'batch line 2: missing "source"'],
    ['{"source": "", "destination": "b"}', 'batch line 2: "source" must be a non-empty string'],
    ['{"source": [], "destination": "b"}', 'batch line 2: "source" must be a non-empty string'],
    ['{"source": "a", "destination": 5}', 'batch line 2: "destination" must be'],
    ['["a", "b"]', 'batch line 2: expected an object'],
    ['{"source": "a", "destination": "b", "dest": "c"}', 'batch line 2: unknown field "dest"'],
    ['{"source": "a", "destination": "b", "options": [1]}', 'batch line 2: "options" must be an object'],
    ['{"source": "a", "destination": "b", "options": {"rate": null}}', 'batch line 2: option "rate" must be'],
    ['{"source": "a", "destination": "b", "options": {"--rate": "1M"}}', 'batch line 2: "--rate" is not an option name'],
  ];
  for (const [line, message] of bad) {
    it(`refuses ${line}`, () => {
      const text = `{"source": "x", "destination": "y"}\n${line}\n`;
      expect(() => parseBatchFile(text, 'f')).toThrow(message);
    });
  }

  it('refuses a file without copies', () => {
    expect(() => parseBatchFile('\n\n', 'jobs.jsonl')).toThrow('--batch=jobs.jsonl: the file lists no copies');
  });
});

describe('--shard', () => {
  it('parses I/N and refuses I >= N, N = 0 and other text', () => {
    expect(parseShard('1/3')).toEqual({ index: 1, count: 3 });
    expect(parseShard('0/1')).toEqual({ index: 0, count: 1 });
    expect(() => parseShard('3/2')).toThrow('--shard: I must be between 0 and N-1');
    expect(() => parseShard('2/2')).toThrow('--shard: I must be between 0 and N-1');
    expect(() => parseShard('0/0')).toThrow('--shard: N must be at least 1');
    expect(() => parseShard('1')).toThrow('--shard: expected I/N');
    expect(() => parseShard('-1/2')).toThrow('--shard: expected I/N');
  });

  it('the N shards of a file run every line exactly once', () => {
    const text = Array.from({ length: 23 }, (_, i) => (i % 5 === 4 ? '' : `{"source": "s${i}", "destination": "d${i}"}`)).join('\n');
    const jobs = parseBatchFile(text, 'f');
    for (const n of [1, 2, 3, 7, 30]) {
      const seen = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        for (const j of selectShard(jobs, { index: i, count: n })) {
          expect(j.line % n).toBe(i);
          seen.set(j.line, (seen.get(j.line) ?? 0) + 1);
        }
      }
      expect([...seen.keys()].sort((a, b) => a - b)).toEqual(jobs.map((j) => j.line));
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
    }
    expect(selectShard(jobs, undefined)).toEqual(jobs);
  });
});

describe('parseDuration', () => {
  it('takes ms, s, m, h and bare seconds', () => {
    expect(parseDuration('250ms', 'x')).toBe(250);
    expect(parseDuration('1.5s', 'x')).toBe(1500);
    expect(parseDuration('2', 'x')).toBe(2000);
    expect(parseDuration('0', 'x')).toBe(0);
    expect(parseDuration('2m', 'x')).toBe(120_000);
    expect(parseDuration('1h', 'x')).toBe(3_600_000);
  });

  it('refuses anything else, naming the option', () => {
    for (const t of ['', '-1s', '1x', 's', '1 2', '25h']) {
      expect(() => parseDuration(t, '--retry-delay')).toThrow(/^--retry-delay: /);
    }
  });
});
