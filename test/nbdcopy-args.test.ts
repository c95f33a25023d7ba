import { describe, expect, it } from 'vitest';
import { parseNbdcopyArgs, liftCommandGroups } from '../src/cli/nbdcopy-args.js';
import { parseSize } from '../src/cli/size-suffix.js';
import { wantsDebug, errorLine } from '../src/cli/report-error.js';

describe('parseSize', () => {
  it.each([
    ['512', 512], ['256K', 262144], ['256k', 262144], ['1M', 1048576], ['1MiB', 1048576], ['2G', 2 ** 31],
    ['1T', 2 ** 40], ['0', 0], ['64KB', 65536], ['7b', 7],
  ])('%s = %d', (text, value) => {
    expect(parseSize(text, '--x')).toBe(value);
  });
  it.each(['', 'abc', '1.5M', '-1', 'M', '1X', '99999999999999999999'])('rejects %j', (text) => {
    expect(() => parseSize(text, '--x')).toThrow(/--x/);
  });
});

describe('liftCommandGroups', () => {
  it('turns [ ... ] into one operand and keeps flags inside', () => {
    expect(liftCommandGroups(['-p', '[', 'nbdkit', '-r', 'pattern', '1G', ']', 'out'])).toEqual(
      ['-p', ['nbdkit', '-r', 'pattern', '1G'], 'out']);
  });
  it('rejects unbalanced brackets', () => {
    expect(() => liftCommandGroups(['[', 'nbdkit'])).toThrow(/missing '\]'/);
    expect(() => liftCommandGroups([']'])).toThrow(/unexpected/);
    expect(() => liftCommandGroups(['[', ']'])).toThrow(/empty/);
  });
});

describe('parseNbdcopyArgs', () => {
  it('defaults', () => {
    const a = parseNbdcopyArgs(['in', 'out']);
    expect(a).toMatchObject({
      action: 'copy', source: 'in', destination: 'out', allocated: false, connections: undefined,
      destinationIsZero: false, flush: false, noExtents: false, progress: false, queueSize: 16 << 20,
      requestSize: 256 << 10, requests: 64, sparse: 4096, synchronous: false, threads: 0, verbose: false,
    });
  });

  const good: Array<[string[], Record<string, unknown>]> = [
    [['--allocated', 'a', 'b'], { allocated: true }],
    [['-C', '2', 'a', 'b'], { connections: 2 }],
    [['-C2', 'a', 'b'], { connections: 2 }],
    [['--connections=3', 'a', 'b'], { connections: 3 }],
    [['--connections', '3', 'a', 'b'], { connections: 3 }],
    [['--destination-is-zero', 'a', 'b'], { destinationIsZero: true }],
    [['--target-is-zero', 'a', 'b'], { destinationIsZero: true }],
    [['--flush', '--no-extents', 'a', 'b'], { flush: true, noExtents: true }],
    [['-p', 'a', 'b'], { progress: 'bar' }],
    [['--progress', 'a', 'b'], { progress: 'bar' }],
    [['--progress=3', 'a', 'b'], { progress: { fd: 3 } }],
    [['--queue-size=64M', 'a', 'b'], { queueSize: 64 << 20 }],
    [['--request-size=1M', 'a', 'b'], { requestSize: 1 << 20 }],
    [['--request-size', '65536', 'a', 'b'], { requestSize: 65536 }],
    [['-R', '8', 'a', 'b'], { requests: 8 }],
    [['--requests=8', 'a', 'b'], { requests: 8 }],
    [['-S', '0', 'a', 'b'], { sparse: 0 }],
    [['--sparse=64K', 'a', 'b'], { sparse: 65536 }],
    // Larger than a request, as libnbd allows: whole requests are then checked for zeroes.
    [['--request-size=4096', '--sparse=1M', 'a', 'b'], { sparse: 1 << 20, requestSize: 4096 }],
    [['--sparse=8589934592', 'a', 'b'], { sparse: 2 ** 33 }],
    [['--synchronous', 'a', 'b'], { synchronous: true }],
    [['-T', '2', 'a', 'b'], { threads: 2 }],
    [['-pv', 'a', 'b'], { progress: 'bar', verbose: true }],
    [['--verb', 'a', 'b'], { verbose: true }],
    [['-', 'null:'], { source: '-', destination: 'null:' }],
    [['a', '-', '--flush'], { source: 'a', destination: '-', flush: true }],
    [['--', '-weird-name', 'b'], { source: '-weird-name', destination: 'b' }],
    [['--', '[', 'nbdkit', '-r', 'pattern', '1G', ']', 'null:'], { source: ['nbdkit', '-r', 'pattern', '1G'], destination: 'null:' }],
    [['[', 'qemu-nbd', 'x', ']', '[', 'nbdkit', 'memory', '1G', ']'], { source: ['qemu-nbd', 'x'], destination: ['nbdkit', 'memory', '1G'] }],
    [['nbd+unix:///?socket=/tmp/s', 'out'], { source: 'nbd+unix:///?socket=/tmp/s' }],
  ];
  it.each(good)('accepts %j', (argv, expected) => {
    expect(parseNbdcopyArgs(argv)).toMatchObject(expected);
  });

  it('help and version win over everything else', () => {
    expect(parseNbdcopyArgs(['--help']).action).toBe('help');
    expect(parseNbdcopyArgs(['-V']).action).toBe('version');
    expect(parseNbdcopyArgs(['--version', 'x']).action).toBe('version');
  });

  const bad: Array<[string[], RegExp]> = [
    [[], /expected SOURCE and DESTINATION/],
    [['a'], /expected SOURCE and DESTINATION/],
    [['a', 'b', 'c'], /too many arguments/],
    [['--bogus', 'a', 'b'], /unrecognized option '--bogus'/],
    [['-x', 'a', 'b'], /invalid option -- 'x'/],
    [['--s', 'a', 'b'], /ambiguous/],
    [['-C', '0', 'a', 'b'], /--connections: must be at least 1/],
    [['-C', 'two', 'a', 'b'], /--connections: expected a number/],
    [['-C'], /requires an argument/],
    [['--requests=0', 'a', 'b'], /--requests/],
    [['--request-size=1000', 'a', 'b'], /--request-size: must be a power of 2/],
    [['--request-size=64M', 'a', 'b'], /--request-size/],
    [['--request-size=256', 'a', 'b'], /--request-size/],
    [['--sparse=100', 'a', 'b'], /--sparse: must be a power of 2 and >= 512/],
    [['--sparse=1536', 'a', 'b'], /--sparse: must be a power of 2 and >= 512/],
    [['--sparse=6442450944', 'a', 'b'], /--sparse: must be a power of 2 and >= 512/],
    [['--queue-size=0', 'a', 'b'], /--queue-size/],
    [['--progress=x', 'a', 'b'], /--progress/],
    [['--flush=1', 'a', 'b'], /doesn't allow an argument/],
    [['null:', 'b'], /null: can only be used as the destination/],
    [['[', 'nbdkit', 'a', 'b'], /missing '\]'/],
  ];
  it.each(bad)('rejects %j', (argv, message) => {
    expect(() => parseNbdcopyArgs(argv)).toThrow(message);
  });
});

describe('report-error helpers', () => {
  it('prints one line whatever the message', () => {
    expect(errorLine('nbdcopy', new Error('a: b\n  c'))).toBe('nbdcopy: a: b c');
    // A server's text cannot drive the terminal: escapes, carriage returns and NULs show as \xHH.
    expect(errorLine('nbdinfo', new Error('NBD_OPT_GO: server replied NBD_REP_ERR_INVALID: \x1b[2J\rx\0y\x9b'))).toBe(
      'nbdinfo: NBD_OPT_GO: server replied NBD_REP_ERR_INVALID: \\x1b[2J\\x0dx\\x00y\\x9b');
  });
  it('detects -v and --verbose but not after --', () => {
    expect(wantsDebug(['-v', 'a'])).toBe(true);
    expect(wantsDebug(['-pv', 'a'])).toBe(true);
    expect(wantsDebug(['--verbose'])).toBe(true);
    expect(wantsDebug(['--', '[', 'nbdkit', '-v', ']'])).toBe(process.env['NBD_DEBUG'] === '1');
    expect(wantsDebug(['-V'])).toBe(process.env['NBD_DEBUG'] === '1');
  });
});
