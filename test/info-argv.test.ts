// nbdinfo's option parsing: getopt_long behaviour and libnbd's mode rules.
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError } from '../src/info/argv.js';

function run(argv: string[]) {
  const r = parseArgs(argv);
  if (r.action !== 'run') throw new Error(`expected run, got ${r.action}`);
  return r.options;
}

describe('parseArgs', () => {
  it('defaults: show mode with content probing', () => {
    expect(run(['nbd://x'])).toEqual({ mode: 'show', json: false, content: true, totals: false, target: { uri: 'nbd://x' } });
  });

  it('options after the URI, abbreviations, --map with and without a value', () => {
    expect(run(['nbd://x', '--js'])).toMatchObject({ json: true });
    expect(run(['--map', 'nbd://x'])).toMatchObject({ mode: 'map', map: 'base:allocation', content: false });
    expect(run(['--map=qemu:dirty-bitmap:b', '--total', 'nbd://x'])).toMatchObject({ map: 'qemu:dirty-bitmap:b', totals: true });
    expect(run(['--can', 'trim', 'nbd://x'])).toMatchObject({ mode: 'can', can: 'trim' });
    expect(run(['--is=read-only', 'nbd://x'])).toMatchObject({ mode: 'can', can: 'read-only' });
    expect(run(['--colo', 'nbd://x'])).toMatchObject({ colour: true });
    expect(run(['--no-colours', 'nbd://x'])).toMatchObject({ colour: false });
  });

  it('--list probes no content unless asked', () => {
    expect(run(['-L', 'nbd://x'])).toMatchObject({ mode: 'list', content: false });
    expect(run(['--list', '--content', 'nbd://x'])).toMatchObject({ mode: 'list', content: true });
    expect(run(['--no-content', 'nbd://x'])).toMatchObject({ mode: 'show', content: false });
  });

  it('[ CMD ARGS ] after --', () => {
    expect(run(['--size', '--', '[', 'nbdkit', '-r', 'memory', '1M', ']'])).toMatchObject({
      mode: 'size',
      target: { command: ['nbdkit', '-r', 'memory', '1M'] },
    });
  });

  it('help, version, option listings end parsing at once', () => {
    expect(parseArgs(['--help'])).toEqual({ action: 'help' });
    expect(parseArgs(['-V', 'junk', 'more'])).toEqual({ action: 'version' });
    expect(parseArgs(['--vers'])).toEqual({ action: 'version' });
    expect(parseArgs(['--long-options'])).toEqual({ action: 'long-options' });
    expect(parseArgs(['--short-options'])).toEqual({ action: 'short-options' });
  });

  it('rejects what libnbd rejects, with its wording', () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /missing NBD URI/],
      [['a', 'b'], /expected one NBD URI/],
      [['--bogus', 'x'], /unrecognized option '--bogus'/],
      [['-x', 'u'], /invalid option -- 'x'/],
      [['--is'], /option '--is' requires an argument/],
      [['--json=1', 'u'], /option '--json' doesn't allow an argument/],
      [['--co', 'u'], /option '--co' is ambiguous/],
      [['--list', '--size', 'u'], /you cannot use --list, --map and --size together\./],
      [['--map', '--can', 'read', 'u'], /you cannot use --list, --map and --size together\./],
      [['--content', '--no-content', 'u'], /you cannot use --content and --no-content together\./],
      [['--totals', 'u'], /you must use --totals only with --map option\./],
    ];
    for (const [argv, message] of cases) {
      expect(() => parseArgs(argv), argv.join(' ')).toThrow(UsageError);
      expect(() => parseArgs(argv), argv.join(' ')).toThrow(message);
    }
  });
});
