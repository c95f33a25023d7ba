// Renderers against output captured from libnbd 1.14.2's nbdinfo on real servers.
import { describe, expect, it } from 'vitest';
import type { ExportFacts, MapFacts, ShowFacts } from '../src/info/facts.js';
import { renderShowJson } from '../src/info/render-json.js';
import { renderShowText } from '../src/info/render-text.js';
import { renderMapJson, renderMapText } from '../src/info/render-map.js';
import { renderTotalsJson, renderTotalsText } from '../src/info/render-totals.js';
import { jsonString } from '../src/info/json-string.js';
import { humanSize } from '../src/info/human-size.js';
import { formatFixed, formatG, formatPercent1 } from '../src/info/printf.js';
import { formatExportUri } from '../src/info/uri-format.js';

const memoryExport: ExportFacts = {
  name: '',
  size: 1048576,
  exactSize: 1048576n,
  content: 'data',
  uri: 'nbd+unix:///?socket=/tmp/ns/m.sock',
  contexts: ['base:allocation'],
  isRotational: false,
  isReadOnly: false,
  canCache: true,
  canDf: true,
  canFastZero: true,
  canFlush: true,
  canFua: true,
  canMultiConn: true,
  canTrim: true,
  canZero: true,
};
const memory: ShowFacts = {
  connection: { protocol: 'newstyle-fixed', tls: false, structured: true },
  exports: [memoryExport],
};

describe('show renderers (nbdkit memory 1M)', () => {
  it('text', () => {
    expect(renderShowText(memory, { colour: false })).toBe(
      'protocol: newstyle-fixed without TLS, using structured packets\n' +
        'export="":\n\texport-size: 1048576 (1M)\n\tcontent: data\n' +
        '\turi: nbd+unix:///?socket=/tmp/ns/m.sock\n\tcontexts:\n\t\tbase:allocation\n' +
        '\tis_rotational: false\n\tis_read_only: false\n\tcan_cache: true\n\tcan_df: true\n' +
        '\tcan_fast_zero: true\n\tcan_flush: true\n\tcan_fua: true\n\tcan_multi_conn: true\n' +
        '\tcan_trim: true\n\tcan_zero: true\n',
    );
  });

  it('json', () => {
    expect(renderShowJson(memory)).toBe(
      '{\n"protocol": "newstyle-fixed",\n"TLS": false,\n"structured": true,\n"exports": [\n' +
        '\t{\n\t"export-name": "",\n\t"content": "data",\n' +
        '\t"uri": "nbd+unix:///?socket=/tmp/ns/m.sock",\n\t"contexts": [\n\t\t"base:allocation"\n\t],\n' +
        '\t"is_rotational": false,\n\t"is_read_only": false,\n\t"can_cache": true,\n\t"can_df": true,\n' +
        '\t"can_fast_zero": true,\n\t"can_flush": true,\n\t"can_fua": true,\n\t"can_multi_conn": true,\n' +
        '\t"can_trim": true,\n\t"can_zero": true,\n\t"export-size": 1048576,\n\t"export-size-str": "1M"\n' +
        '\t} ]\n}\n',
    );
    expect(JSON.parse(renderShowJson(memory)).exports[0]['export-size']).toBe(1048576);
  });

  it('colour text matches libnbd escape sequences', () => {
    const text = renderShowText(
      { ...memory, exports: [{ ...memoryExport, uri: undefined, canDf: false }] },
      { colour: true },
    );
    expect(text).toBe(
      '\x1b[22;90mprotocol: newstyle-fixed without TLS, using structured packets\n\x1b[0m' +
        '\x1b[1;30mexport="":\n\texport-size: 1048576 (1M)\n\tcontent: data\n\x1b[0m' +
        '\x1b[22;90m\tcontexts:\n\t\tbase:allocation\n\tis_rotational: false\n\x1b[0m' +
        '\tis_read_only: false\n' +
        '\x1b[22;32m\tcan_cache: true\n\x1b[0m\x1b[22;31m\tcan_df: false\n\x1b[0m' +
        '\x1b[22;32m\tcan_fast_zero: true\n\x1b[0m\x1b[22;32m\tcan_flush: true\n\x1b[0m' +
        '\x1b[22;32m\tcan_fua: true\n\x1b[0m\x1b[22;32m\tcan_multi_conn: true\n\x1b[0m' +
        '\x1b[22;32m\tcan_trim: true\n\x1b[0m\x1b[22;32m\tcan_zero: true\n\x1b[0m',
    );
  });

  it('oldstyle, empty export, no contexts, block sizes', () => {
    const facts: ShowFacts = {
      connection: { protocol: 'oldstyle', tls: false, structured: false },
      exports: [{ ...memoryExport, size: 0, exactSize: 0n, content: 'empty', contexts: undefined, blockSizes: { minimum: 1, preferred: 4096, maximum: 33554432 } }],
    };
    const text = renderShowText(facts, { colour: false });
    expect(text).toContain('protocol: oldstyle without TLS, using simple packets\n');
    expect(text).toContain('\texport-size: 0\n\tcontent: empty\n');
    expect(text).not.toContain('contexts');
    expect(text.endsWith('\tblock_size_minimum: 1\n\tblock_size_preferred: 4096\n\tblock_size_maximum: 33554432\n')).toBe(true);
    const json = renderShowJson(facts);
    expect(json).toContain('\t"block_size_maximum": 33554432,\n\t"export-size": 0,\n\t"export-size-str": "0"\n');
    expect(json).toContain('"structured": false,\n');
  });

  it('list: several exports, odd names, descriptions, and no exports at all', () => {
    const names = ['a', 'b"q\\x', 'c\u0001d', 'é☃'];
    const facts: ShowFacts = {
      connection: memory.connection,
      exports: names.map((name) => ({ ...memoryExport, name, description: 'some desc', content: undefined })),
    };
    const json = renderShowJson(facts);
    expect(JSON.parse(json).exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual(names);
    expect(json).toContain('\t"export-name": "b\\"q\\\\x",\n\t"description": "some desc",\n');
    expect(json).toContain('\t"export-name": "c\\u0001d",\n');
    expect(json).toContain('\t"export-size-str": "1M"\n\t},\n\t{\n');
    const text = renderShowText(facts, { colour: false });
    expect(text).toContain('export="b\\"q\\\\x":\n\tdescription: some desc\n');
    expect(renderShowJson({ connection: memory.connection, exports: [] })).toBe(
      '{\n"protocol": "newstyle-fixed",\n"TLS": false,\n"structured": true,\n"exports": []\n}\n',
    );
  });
});

describe('map renderers', () => {
  // nbdkit data '"hello world" @1048576 1 @3145727 2' (3M), as libnbd printed it.
  const data: MapFacts = {
    context: 'base:allocation',
    size: 3145728,
    extents: [
      { length: 32768, flags: 0 },
      { length: 500000, flags: 3 },
      { length: 515808, flags: 3 },
      { length: 32768, flags: 0 },
      { length: 2031616, flags: 3 },
      { length: 16384, flags: 0 },
      { length: 16384, flags: 0 },
    ],
  };

  it('text merges adjacent extents of one type', () => {
    expect(renderMapText(data, false)).toBe(
      '         0       32768    0  data\n' +
        '     32768     1015808    3  hole,zero\n' +
        '   1048576       32768    0  data\n' +
        '   1081344     2031616    3  hole,zero\n' +
        '   3112960       32768    0  data\n',
    );
  });

  it('json', () => {
    expect(renderMapJson(data)).toBe(
      '[\n' +
        '{ "offset": 0, "length": 32768, "type": 0, "description": "data"},\n' +
        '{ "offset": 32768, "length": 1015808, "type": 3, "description": "hole,zero"},\n' +
        '{ "offset": 1048576, "length": 32768, "type": 0, "description": "data"},\n' +
        '{ "offset": 1081344, "length": 2031616, "type": 3, "description": "hole,zero"},\n' +
        '{ "offset": 3112960, "length": 32768, "type": 0, "description": "data"}\n' +
        ']\n',
    );
    expect(renderMapJson({ context: 'base:allocation', size: 0, extents: [] })).toBe('[\n\n]\n');
  });

  it('totals', () => {
    expect(renderTotalsText(data, false)).toBe('     98304   3.1%   0 data\n   3047424  96.9%   3 hole,zero\n');
    expect(renderTotalsJson(data)).toBe(
      '[\n{ "size": 98304, "percent": 3.125, "type": 0, "description": "data" },\n' +
        '{ "size": 3047424, "percent": 96.875, "type": 3, "description": "hole,zero" }\n]\n',
    );
    expect(renderTotalsJson({ context: 'base:allocation', size: 0, extents: [] })).toBe('[]\n');
    expect(renderTotalsText({ context: 'base:allocation', size: 0, extents: [] }, false)).toBe('');
  });

  it('tiny and huge percentages print like C %g and %5.1f', () => {
    const facts: MapFacts = {
      context: 'base:allocation',
      size: 8589934592,
      extents: [{ length: 65536, flags: 0 }, { length: 8589869056, flags: 3 }],
    };
    expect(renderTotalsJson(facts)).toContain('"percent": 0.000762939,');
    expect(renderTotalsJson(facts)).toContain('"percent": 99.9992,');
    expect(renderTotalsText(facts, false)).toBe('     65536   0.0%   0 data\n8589869056 100.0%   3 hole,zero\n');
  });

  it('qemu contexts: descriptions and colours', () => {
    const depth: MapFacts = {
      context: 'qemu:allocation-depth',
      size: 4194304,
      extents: [
        { length: 65536, flags: 2 },
        { length: 983040, flags: 0 },
        { length: 131072, flags: 1 },
        { length: 3014656, flags: 0 },
      ],
    };
    expect(renderMapText(depth, true)).toBe(
      '\x1b[47m         0       65536    2  backing depth 2\x1b[0m\n' +
        '     65536      983040    0  absent\n' +
        '\x1b[1;37m\x1b[40m   1048576      131072    1  local\x1b[0m\n' +
        '   1179648     3014656    0  absent\n',
    );
    const bitmap: MapFacts = {
      context: 'qemu:dirty-bitmap:bm0',
      size: 4194304,
      extents: [{ length: 3997696, flags: 0 }, { length: 196608, flags: 1 }],
    };
    expect(renderTotalsJson(bitmap)).toBe(
      '[\n{ "size": 3997696, "percent": 95.3125, "type": 0, "description": "clean" },\n' +
        '{ "size": 196608, "percent": 4.6875, "type": 1, "description": "dirty" }\n]\n',
    );
    expect(renderTotalsText(bitmap, true)).toBe(
      '\x1b[22;32m   3997696  95.3%   0 clean\x1b[0m\n\x1b[22;31m    196608   4.7%   1 dirty\x1b[0m\n',
    );
    const unknown: MapFacts = { context: 'foo:bar', size: 10, extents: [{ length: 10, flags: 7 }] };
    expect(renderMapText(unknown, true)).toBe('         0          10    7\n');
    expect(renderMapJson(unknown)).toBe('[\n{ "offset": 0, "length": 10, "type": 7}\n]\n');
  });
});

describe('helpers', () => {
  it('jsonString escapes like libnbd and stays valid JSON', () => {
    const odd = 'q"b\\s\u0001\u001f\u007fé☃\n\t';
    expect(jsonString(odd)).toBe('"q\\"b\\\\s\\u0001\\u001f\u007fé☃\\u000a\\u0009"');
    expect(JSON.parse(jsonString(odd))).toBe(odd);
  });

  it('humanSize', () => {
    expect(humanSize(1048576n)).toEqual({ text: '1M', abbreviated: true });
    expect(humanSize(2125119488n)).toEqual({ text: '2075312K', abbreviated: true });
    expect(humanSize(5368709120n)).toEqual({ text: '5G', abbreviated: true });
    expect(humanSize(100000n)).toEqual({ text: '100000', abbreviated: false });
    expect(humanSize(0n)).toEqual({ text: '0', abbreviated: false });
    expect(humanSize(2n ** 50n)).toEqual({ text: '1P', abbreviated: true });
    // Past 2^53 a number would round 2^60 + 1000 to 2^60 ("1E"); libnbd prints it whole.
    expect(humanSize(2n ** 60n + 1000n)).toEqual({ text: '1152921504606847976', abbreviated: false });
    expect(humanSize(2n ** 63n - 1024n)).toEqual({ text: '9007199254740991K', abbreviated: true });
  });

  it('formatG', () => {
    expect(formatG(100)).toBe('100');
    expect(formatG(50)).toBe('50');
    expect(formatG(3.125)).toBe('3.125');
    expect(formatG(100 / 3)).toBe('33.3333');
    expect(formatG(5.960464477539063e-6)).toBe('5.96046e-06');
    expect(formatG(0.0001)).toBe('0.0001');
    expect(formatG(99.99999999)).toBe('100');
    // Exact ties round to even, as glibc's printf does (JavaScript rounds them up).
    expect(formatG(100 / 512)).toBe('0.195312');
    expect(formatG(0.1953135)).toBe('0.195314');
    expect(formatG(1234565)).toBe('1.23456e+06');
    expect(formatG(1234575)).toBe('1.23458e+06');
  });

  it('formatPercent1 and formatFixed round exact ties to even', () => {
    expect(formatPercent1(6.25)).toBe('  6.2');
    expect(formatPercent1(6.35)).toBe('  6.3'); // 6.35 is stored just below 6.35
    expect(formatPercent1(0.75)).toBe('  0.8');
    expect(formatPercent1(99.95)).toBe('100.0'); // stored just above
    expect(formatPercent1(99.96)).toBe('100.0');
    expect(formatPercent1(0.04)).toBe('  0.0');
    expect(formatFixed(2.5, 0)).toBe('2');
    expect(formatFixed(0.125, 2)).toBe('0.12');
    expect(formatFixed(1e-7, 3)).toBe('0.000');
  });

  it('formatExportUri escapes export names like libnbd', () => {
    const unix = { transport: 'unix' as const, tls: false, socket: '/tmp/ns/sp ace&x=y%/e:s.sock' };
    expect(formatExportUri(unix, '')).toBe('nbd+unix:///?socket=/tmp/ns/sp ace&x=y%/e:s.sock');
    expect(formatExportUri({ ...unix, socket: '/s' }, '/x:y@z&=+$,;?#[]%! ~*\'()<>{}|^`')).toBe(
      "nbd+unix:////x%3Ay@z&=+$,;%3F%23%5B%5D%25!%20~*'()%3C%3E%7B%7D%7C%5E%60?socket=/s",
    );
    expect(formatExportUri({ ...unix, socket: '/s' }, 'é☃')).toBe('nbd+unix:///%C3%A9%E2%98%83?socket=/s');
    expect(formatExportUri({ transport: 'tcp', tls: false, host: 'localhost', port: '10999' }, 'foo')).toBe(
      'nbd://localhost:10999/foo',
    );
    expect(formatExportUri({ transport: 'tcp', tls: false, host: '::1', port: '10999' }, '')).toBe('nbd://[::1]:10999/');
    expect(
      formatExportUri({ transport: 'unix', tls: true, user: 'alice', socket: '/t.sock', tlsPskFile: '/k.psk' }, ''),
    ).toBe('nbds+unix://alice@/?socket=/t.sock&tls-psk-file=/k.psk');
  });
});
