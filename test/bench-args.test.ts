// The bench's command line and the exact commands it races.
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../bench/lib/args.mjs';
import { SCENARIOS, scenarioSize, selectScenarios } from '../bench/lib/scenarios.mjs';
import { buildCommand, programs } from '../bench/lib/tools.mjs';

describe('parseBenchArgs', () => {
  it('has defaults for a plain run', () => {
    expect(parseBenchArgs([])).toEqual({
      quick: false,
      scenarios: [],
      tools: ['ours', 'libnbd', 'qemu-img'],
      runs: 3,
      warmup: true,
      server: null,
      ours: null,
      label: null,
      json: null,
      markdown: false,
      svg: null,
      baseline: null,
      threshold: null,
      current: null,
      list: false,
      help: false,
    });
  });

  it('accepts repeated and comma-listed scenarios and tools', () => {
    const options = parseBenchArgs(['--scenario', 'pattern-null,latency', '--scenario', 'info-json', '--tool', 'ours,libnbd', '--quick', '--runs', '5']);
    expect(options.scenarios).toEqual(['pattern-null', 'latency', 'info-json']);
    expect(options.tools).toEqual(['ours', 'libnbd']);
    expect(options.quick).toBe(true);
    expect(options.runs).toBe(5);
  });

  it('reads outputs, baseline and threshold', () => {
    const options = parseBenchArgs(['--json', 'r.json', '--svg', 'c.svg', '--markdown', '--baseline', 'b.json', '--threshold', '7.5', '--server', 'nbdserve', '--no-warmup', '--ours', '/snap', '--label', 'snapshot of abc123']);
    expect(options).toMatchObject({ json: 'r.json', svg: 'c.svg', markdown: true, baseline: 'b.json', threshold: 7.5, server: 'nbdserve', warmup: false, ours: '/snap', label: 'snapshot of abc123' });
  });

  it('rejects nonsense with a message that names the option', () => {
    expect(() => parseBenchArgs(['--runs', '0'])).toThrow(/--runs: expected a positive integer/);
    expect(() => parseBenchArgs(['--runs', '2.5'])).toThrow(/--runs/);
    expect(() => parseBenchArgs(['--threshold', '5'])).toThrow(/--threshold needs --baseline/);
    expect(() => parseBenchArgs(['--baseline', 'b', '--threshold', 'abc'])).toThrow(/--threshold: expected a positive number/);
    expect(() => parseBenchArgs(['--server', 'qemu-nbd'])).toThrow(/--server/);
    expect(() => parseBenchArgs(['--tool', 'dd'])).toThrow(/unknown tool "dd"/);
    expect(() => parseBenchArgs(['extra'])).toThrow(/unexpected argument/);
    expect(() => parseBenchArgs(['--frobnicate'])).toThrow();
  });
});

describe('scenarios', () => {
  it('cover the issue’s cases at the issue’s full sizes', () => {
    const full = Object.fromEntries(SCENARIOS.map((s) => [s.name, scenarioSize(s, false)]));
    expect(full['pattern-null']).toBe(4 * 2 ** 30);
    expect(full['sparse-file']).toBe(8 * 2 ** 30);
    expect(full['holes-null']).toBe(64 * 2 ** 30);
    expect(full['file-nbd']).toBe(2 ** 30);
    expect(Object.keys(full)).toEqual(
      expect.arrayContaining(['pattern-null-c1', 'pattern-file', 'nbd-nbd', 'nbd-stdout', 'latency', 'info-json']),
    );
  });
  it('keep quick sizes no larger than full ones', () => {
    for (const s of SCENARIOS) expect(scenarioSize(s, true)).toBeLessThanOrEqual(scenarioSize(s, false));
  });
  it('select by name, in table order, and refuse unknown names', () => {
    expect(selectScenarios(['latency', 'pattern-null']).map((s) => s.name)).toEqual(['pattern-null', 'latency']);
    expect(selectScenarios([])).toBe(SCENARIOS);
    expect(() => selectScenarios(['nope'])).toThrow(/unknown scenario nope/);
  });
});

describe('buildCommand', () => {
  const paths = programs('/repo');
  const src = { kind: 'nbd' as const, uri: 'nbd+unix:///?socket=/t/src.sock' };

  it('runs our tools by path from the repo, never a bare name', () => {
    expect(paths.ours).toEqual({ copy: '/repo/bin/nbdcopy', info: '/repo/bin/nbdinfo' });
    expect(paths.libnbd).toEqual({ copy: '/usr/bin/nbdcopy', info: '/usr/bin/nbdinfo' });
  });

  it('gives both nbdcopies the same arguments', () => {
    for (const tool of ['ours', 'libnbd'] as const) {
      const program = paths[tool].copy;
      expect(buildCommand(tool, { program, src, dst: { kind: 'null' }, size: 1, nbdcopyArgs: ['-C', '1'] })).toEqual({
        argv: [program, '-C', '1', src.uri, 'null:'],
        stdout: 'ignore',
      });
      expect(buildCommand(tool, { program, src, dst: { kind: 'stdout' }, size: 1 })).toEqual({ argv: [program, src.uri, '-'], stdout: 'count' });
      expect(buildCommand(tool, { program, src: { kind: 'file', path: '/t/in.img' }, dst: { kind: 'nbd', uri: 'U' }, size: 1 })).toEqual({
        argv: [program, '/t/in.img', 'U'],
        stdout: 'ignore',
      });
    }
  });

  it('maps each destination onto qemu-img convert', () => {
    const program = '/usr/bin/qemu-img';
    const base = [program, 'convert', '-W', '-f', 'raw'];
    expect(buildCommand('qemu-img', { program, src, dst: { kind: 'null' }, size: 4096 })).toEqual({
      argv: [...base, '-n', src.uri, '--target-image-opts', 'driver=null-co,size=4096'],
      stdout: 'ignore',
    });
    expect(buildCommand('qemu-img', { program, src, dst: { kind: 'file', path: '/t/out.img' }, size: 1 })).toEqual({
      argv: [...base, '-O', 'raw', src.uri, '/t/out.img'],
      stdout: 'ignore',
    });
    expect(buildCommand('qemu-img', { program, src, dst: { kind: 'nbd', uri: 'U' }, size: 1 })).toEqual({
      argv: [...base, '-n', '-O', 'raw', src.uri, 'U'],
      stdout: 'ignore',
    });
    expect(buildCommand('qemu-img', { program, src, dst: { kind: 'stdout' }, size: 1 })).toEqual({ skip: 'qemu-img convert cannot write to a pipe' });
  });

  it('runs nbdinfo --json, and qemu-img info as the third opinion', () => {
    expect(buildCommand('ours', { program: '/repo/bin/nbdinfo', src, dst: { kind: 'info' }, size: 1 })).toEqual({
      argv: ['/repo/bin/nbdinfo', '--json', src.uri],
      stdout: 'ignore',
    });
    expect(buildCommand('qemu-img', { program: '/usr/bin/qemu-img', src, dst: { kind: 'info' }, size: 1 })).toEqual({
      argv: ['/usr/bin/qemu-img', 'info', '--output=json', src.uri],
      stdout: 'ignore',
    });
  });
});
