// Markdown tables and the SVG chart of bench results.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDetailTable, renderMarkdown, renderSummaryTable } from '../bench/lib/markdown.mjs';
import { escapeXml, renderSvg } from '../bench/lib/svg.mjs';

const repoRoot = join(import.meta.dirname, '..');
const sample = () => JSON.parse(readFileSync(join(repoRoot, 'bench/fixtures/sample-result.json'), 'utf8'));

/** Cells of a Markdown table row, honouring escaped pipes. */
function cells(line: string): string[] {
  return line
    .slice(2, -2)
    .split(/(?<!\\) \| /)
    .map((cell) => cell.trim());
}

describe('Markdown', () => {
  it('has a summary row per scenario with ours ÷ theirs', () => {
    const lines = renderSummaryTable(sample()).split('\n');
    expect(lines[0]).toBe('| Scenario | ours ÷ libnbd (time) | ours ÷ qemu-img (time) | ours ÷ libnbd (CPU) |');
    expect(lines[1]).toBe('|---|---|---|---|');
    expect(lines.slice(2)).toEqual([
      '| pattern-null | 0.90x | 1.50x | 1.02x |',
      '| nbd-stdout | 20.00x | - | 30.00x |',
      '| info-json | - | - | - |',
    ]);
  });

  it('has a detail row per scenario and tool, every row with the header’s column count', () => {
    const lines = renderDetailTable(sample()).split('\n');
    const width = cells(lines[0]).length;
    expect(width).toBe(12);
    for (const line of lines.slice(2)) expect(cells(line)).toHaveLength(width);
    expect(lines).toHaveLength(2 + 3 + 3 + 2);
    expect(cells(lines[2])).toEqual([
      'pattern-null (1 GiB)',
      'nbdkit',
      '**ours**',
      '0.450 s',
      '0.400 s',
      '0.500 s',
      '0.410 s',
      '-',
      '88 MiB',
      '2.22 GiB/s',
      '',
      '',
    ]);
    expect(cells(lines[3]).slice(2)).toEqual(['libnbd', '0.500 s', '0.480 s', '0.520 s', '0.400 s', '0.150 s', '39 MiB', '2.00 GiB/s', '0.90x', '1.02x']);
  });

  it('says why a tool was skipped, escaping pipes so the table holds', () => {
    const table = renderDetailTable(sample());
    expect(table).toContain('| qemu-img | skipped: qemu-img convert cannot write to a pipe |');
    expect(table).toContain('skipped: smoke check failed: nbdinfo: cannot connect \\| really');
  });

  it('has no throughput for the nbdinfo start-up scenario', () => {
    const line = renderDetailTable(sample())
      .split('\n')
      .find((l) => l.includes('| libnbd | 0.011 s'));
    expect(cells(line ?? '')[9]).toBe('-');
  });

  it('keeps a scenario that could not be set up, with the reason', () => {
    const result = sample();
    result.scenarios.push({ name: 'latency', bytes: 2 ** 28, server: { kind: 'nbdserve', commands: [] }, error: 'socket not ready', rows: [], ratios: {} });
    const lines = renderDetailTable(result).split('\n');
    expect(cells(lines.at(-1) ?? '').slice(0, 4)).toEqual(['latency (256 MiB)', 'nbdserve', '', 'set-up failed: socket not ready']);
    expect(cells(lines.at(-1) ?? '')).toHaveLength(12);
    expect(renderSummaryTable(result).split('\n').at(-1)).toBe('| latency | - | - | - |');
  });

  it('shows the run label and machine above the tables', () => {
    const result = sample();
    result.label = 'snapshot of abc123';
    const text = renderMarkdown(result);
    expect(text.split('\n').slice(0, 2)).toEqual(['Run: snapshot of abc123.', 'Machine: 2 × Example CPU <model> & co, 23.5 GiB RAM, Linux 6.1, Node v20.20.2.']);
  });

  it('puts both tables in the paste-ready text', () => {
    const text = renderMarkdown(sample());
    expect(text).toContain(renderSummaryTable(sample()));
    expect(text).toContain(renderDetailTable(sample()));
  });
});

/** A small well-formedness check: balanced tags, quoted attributes, escaped text. */
function checkWellFormed(xml: string): string[] {
  const stack: string[] = [];
  let roots = 0;
  const tokens = xml.split(/(<[^>]*>)/);
  for (const token of tokens) {
    if (!token.startsWith('<')) {
      if (/[<>]/.test(token)) throw new Error(`raw bracket in text: ${token}`);
      if (/&(?!(amp|lt|gt|quot|apos);)/.test(token)) throw new Error(`raw ampersand in text: ${token}`);
      if (stack.length === 0 && token.trim() !== '') throw new Error(`text outside the root: ${token}`);
      continue;
    }
    const close = /^<\/([\w:-]+)\s*>$/.exec(token);
    if (close) {
      const open = stack.pop();
      if (open !== close[1]) throw new Error(`</${close[1]}> closes <${open}>`);
      continue;
    }
    const open = /^<([\w:-]+)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>$/.exec(token);
    if (!open) throw new Error(`malformed tag: ${token}`);
    const names = [...open[2].matchAll(/([\w:-]+)=/g)].map((m) => m[1]);
    if (new Set(names).size !== names.length) throw new Error(`duplicate attribute: ${token}`);
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(open[2])) throw new Error(`raw ampersand in attribute: ${token}`);
    if (stack.length === 0) roots += 1;
    if (open[3] !== '/') stack.push(open[1]);
  }
  if (stack.length > 0) throw new Error(`unclosed: ${stack.join(', ')}`);
  return roots === 1 ? [] : [`${roots} root elements`];
}

describe('SVG chart', () => {
  it('is well-formed XML with one svg root', () => {
    const svg = renderSvg(sample());
    expect(checkWellFormed(svg)).toEqual([]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('escapes text from the result file', () => {
    expect(escapeXml(`a<b>&"c'`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;');
    const hostile = sample();
    hostile.scenarios[0].name = 'x<y>&z';
    const svg = renderSvg(hostile);
    expect(svg).toContain('x&lt;y&gt;&amp;z');
    expect(svg).toContain('Example CPU &lt;model&gt; &amp; co');
    expect(checkWellFormed(svg)).toEqual([]);
  });

  it('draws one bar per measured comparison, green when ours is faster, red when slower', () => {
    const svg = renderSvg(sample());
    const bars = [...svg.matchAll(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="\d+" class="(faster|slower)">/g)].map((m) => m[1]);
    // pattern-null: 0.90 vs libnbd, 1.50 vs qemu-img; nbd-stdout: 20 vs libnbd; info-json: none.
    expect(bars).toEqual(['faster', 'slower', 'slower']);
    expect(svg).toContain('0.90x vs libnbd');
    expect(svg).toContain('20.00x vs libnbd ▶'); // beyond the 8x edge
    expect(svg).toContain('no comparison measured');
  });

  it('keeps bars inside the picture', () => {
    const svg = renderSvg(sample());
    const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)?.[1]);
    for (const match of svg.matchAll(/<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)) {
      expect(Number(match[1]) + Number(match[2])).toBeLessThanOrEqual(width);
    }
  });
});
