// Markdown tables of a bench result, ready to paste into an issue or the README.

import { formatBytes } from './sizes.mjs';
import { formatRate, formatRatio, formatRss, formatSeconds } from './format.mjs';

function cell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function table(header, rows) {
  const lines = [`| ${header.map(cell).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.map(cell).join(' | ')} |`);
  return lines.join('\n');
}

function toolLabel(row) {
  return row.tool === 'ours' ? '**ours**' : row.tool;
}

/** The full table: one line per scenario and tool. */
export function renderDetailTable(result) {
  const header = ['Scenario', 'Server', 'Tool', 'Median', 'Min', 'Max', 'CPU user+sys', 'Server CPU', 'Peak RSS', 'Throughput', 'ours ÷ this (time)', 'ours ÷ this (CPU)'];
  const rows = [];
  for (const scenario of result.scenarios) {
    if (scenario.error) {
      rows.push([`${scenario.name} (${formatBytes(scenario.bytes)})`, scenario.server.kind, '', `set-up failed: ${scenario.error}`, '', '', '', '', '', '', '', '']);
    }
    scenario.rows.forEach((row, index) => {
      const first = index === 0;
      const name = first ? `${scenario.name} (${formatBytes(scenario.bytes)})` : '';
      // Every row names its server: a reader may cut one row out of the table.
      const server = scenario.server.kind;
      if (row.skipped) {
        rows.push([name, server, toolLabel(row), `skipped: ${row.skipped}`, '', '', '', '', '', '', '', '']);
        return;
      }
      const s = row.summary;
      if (s.runs === 0) {
        rows.push([name, server, toolLabel(row), `failed: ${row.note ?? 'see JSON'}`, '', '', '', '', '', '', '', '']);
        return;
      }
      const r = row.tool === 'ours' ? null : scenario.ratios?.[row.tool];
      const failed = s.failed > 0 ? ` (${s.failed} failed: ${row.note ?? 'see JSON'})` : '';
      rows.push([
        name,
        server,
        toolLabel(row),
        formatSeconds(s.medianWallMs) + failed,
        formatSeconds(s.minWallMs),
        formatSeconds(s.maxWallMs),
        formatSeconds(s.medianCpuMs),
        formatSeconds(s.medianServerCpuMs),
        formatRss(s.maxRssKb),
        scenario.kind === 'info' ? '-' : formatRate(s.bytesPerSecond),
        r ? formatRatio(r.wall) : '',
        r ? formatRatio(r.cpu) : '',
      ]);
    });
  }
  return table(header, rows);
}

/** One line per scenario: our time over theirs. Below 1 means we are faster. */
export function renderSummaryTable(result) {
  const others = ['libnbd', 'qemu-img'];
  const header = ['Scenario', ...others.map((tool) => `ours ÷ ${tool} (time)`), 'ours ÷ libnbd (CPU)'];
  const rows = result.scenarios.map((scenario) => [
    scenario.name,
    ...others.map((tool) => formatRatio(scenario.ratios?.[tool]?.wall)),
    formatRatio(scenario.ratios?.libnbd?.cpu),
  ]);
  return table(header, rows);
}

/**
 * Rows whose time is mostly start-up: ours minus Node's own start-up (measured in the same
 * rounds) against libnbd's whole time. Empty when no such row was run.
 */
export function renderStartupTable(result) {
  const rows = result.scenarios
    .filter((scenario) => scenario.startup)
    .map((scenario) => {
      const st = scenario.startup;
      return [scenario.name, formatSeconds(st.nodeMs), formatSeconds(st.oursMinusNodeMs), formatSeconds(st.libnbdMs), formatRatio(st.ratio)];
    });
  if (rows.length === 0) return '';
  return table(['Scenario', 'node -e 0', 'ours − node -e 0', 'libnbd', 'ratio (target ≤ 1.00x)'], rows);
}

/** Where and how the figures were made, in a few lines. */
export function renderContext(result) {
  const m = result.machine;
  const lines = [];
  if (result.label) lines.push(`Run: ${result.label}.`);
  if (m) {
    const memory = m.memoryBytes ? `, ${formatBytes(m.memoryBytes)} RAM` : '';
    lines.push(`Machine: ${m.cpus} × ${m.cpuModel}${memory}, ${m.kernel}, Node ${m.node}.`);
    if (m.loadAverageAtStart) lines.push(`Load average at start: ${m.loadAverageAtStart.map((v) => v.toFixed(2)).join(', ')}.`);
    if (m.nodeStartup?.medianWallMs != null) {
      lines.push(`Node start-up (\`node -e 0\`): ${formatSeconds(m.nodeStartup.medianWallMs)} median, a floor under every row of ours.`);
    }
  }
  if (result.command) lines.push(`Command: \`${result.command}\` (${result.quick ? 'quick' : 'full'} sizes, ${result.runs} runs per tool).`);
  return lines.join('\n');
}

export function renderMarkdown(result) {
  const context = renderContext(result);
  const startup = renderStartupTable(result);
  return [
    ...(context ? [context, ''] : []),
    '#### Where we stand (ours ÷ theirs; below 1.00x we are faster)',
    '',
    renderSummaryTable(result),
    '',
    ...(startup ? ['#### Start-up-bound rows (ours minus Node start-up, against libnbd)', '', startup, ''] : []),
    '#### All figures',
    '',
    renderDetailTable(result),
    '',
  ].join('\n');
}
