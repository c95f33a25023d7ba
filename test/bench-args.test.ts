// The bench's command line and the exact commands it races.
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../bench/lib/args.mjs';
import { SCENARIOS, scenarioSize, selectScenarios } from '../bench/lib/scenarios.mjs';
import { serverArgv } from '../bench/lib/servers.mjs';
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
  it('have the slow-link rows: 2 ms on URI servers, and a rate-limited 20 ms pair', () => {
    const byName = Object.fromEntries(SCENARIOS.map((s) => [s.name, s]));
    for (const name of ['delay2-null', 'delay2-nbd', 'delay2-file']) {
      expect(scenarioSize(byName[name]!, false)).toBe(2 ** 30);
      expect(byName[name]!.source).toMatchObject({ delayReadMs: 2, delayWriteMs: 2 });
    }
    expect(byName['delay2-nbd']!.destination).toMatchObject({ type: 'nbd', delayReadMs: 2, delayWriteMs: 2 });
    expect(scenarioSize(byName['link-nbd']!, false)).toBe(512 * 2 ** 20);
    expect(byName['link-nbd']!.destination).toMatchObject({ rateBits: '1600M', delayWriteMs: 20 });
    expect(SCENARIOS.filter((s) => s.startupBound).map((s) => s.name)).toEqual(['holes-null', 'info-json']);
  });
  it('start nbdkit with the rate filter outside the delay filter, and refuse a rate on nbdserve', () => {
    const spec = { backend: 'pattern', size: 2 ** 30, delayReadMs: 2, delayWriteMs: 2, rateBits: '1600M', threads: 256 };
    expect(serverArgv('nbdkit', spec, '/s', '/r')).toEqual([
      '/usr/bin/nbdkit', '-U', '/s', '-f', '--exit-with-parent', '-t', '256', '--filter=rate', '--filter=delay',
      'pattern', 'size=1G', 'rate=1600M', 'delay-read=2ms', 'delay-write=2ms',
    ]);
    expect(() => serverArgv('nbdserve', spec, '/s', '/r')).toThrow(/rate/);
    expect(serverArgv('nbdserve', { ...spec, rateBits: undefined }, '/s', '/r')).toEqual([
      '/r/bin/nbdserve', '-U', '/s', '--exit-with-parent', '--delay', 'read=2', '--delay', 'write=2', 'pattern', '1G',
    ]);
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
