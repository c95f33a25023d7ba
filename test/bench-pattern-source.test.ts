// The options of the single-source bench scripts (bench/lib/pattern-source.mjs): the word after
// a name, the fallback when it is missing or has no word after it, and --runs checked; a bad
// option ends the script in one line.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { optionReader, runsOption } from '../bench/lib/pattern-source.mjs';

describe('optionReader', () => {
  it('gives the word after the name, else the fallback', () => {
    const option = optionReader(['--size', '64M', '--runs']);
    expect(option('--size', '4G')).toBe('64M');
    expect(option('--rate', '50M')).toBe('50M');
    // A name at the end has no value: the fallback stands.
    expect(option('--runs', '3')).toBe('3');
    expect(option('--rate')).toBeUndefined();
  });
});

describe('runsOption', () => {
  it('a positive integer, given or the fallback', () => {
    expect(runsOption(optionReader(['--runs', '2']), '3')).toBe(2);
    expect(runsOption(optionReader([]), '3')).toBe(3);
  });

  it('anything else is an error naming what was given', () => {
    expect(() => runsOption(optionReader(['--runs', '0']), '3')).toThrow('--runs: expected a positive integer, got 0');
    expect(() => runsOption(optionReader(['--runs', '1.5']), '3')).toThrow('got 1.5');
    expect(() => runsOption(optionReader(['--runs', 'many']), '3')).toThrow('got many');
  });
});

describe('a bad option to the scripts', () => {
  it.each(['integrity', 'rate-limit'])('bench/%s.mjs --runs many: one line naming the script, status 1', (script) => {
    const r = spawnSync(process.execPath, [`bench/${script}.mjs`, '--runs', 'many'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`bench/${script}: --runs: expected a positive integer, got many\n`);
  });
});
