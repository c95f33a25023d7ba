// A hand-written SVG bar chart of ours ÷ theirs (median wall time) per scenario.
// Log scale centred on 1x: a bar to the left means we are faster, to the right slower,
// and 2x faster looks as long as 2x slower.

import { formatRatio } from './format.mjs';

const COMPARED = ['libnbd', 'qemu-img'];
const WIDTH = 760;
const LABEL_WIDTH = 230;
const PLOT_LEFT = LABEL_WIDTH + 10;
// Room on the right for the label of a bar that reaches the edge.
const PLOT_RIGHT = WIDTH - 130;
const ROW_HEIGHT = 20;
const GROUP_GAP = 10;
const TOP = 64;
// Ratios outside 1/8x .. 8x are drawn at the edge and marked with an arrow.
const LIMIT = 8;

export function escapeXml(text) {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function xOf(value) {
  const clamped = Math.min(LIMIT, Math.max(1 / LIMIT, value));
  const unit = Math.log2(clamped) / Math.log2(LIMIT); // -1 .. 1
  const centre = (PLOT_LEFT + PLOT_RIGHT) / 2;
  return centre + unit * ((PLOT_RIGHT - PLOT_LEFT) / 2);
}

const round = (value) => Math.round(value * 10) / 10;

export function renderSvg(result, { title = 'ours ÷ theirs, median wall time (left of 1x: ours faster)' } = {}) {
  const parts = [];
  let y = TOP;
  const centre = xOf(1);
  for (const scenario of result.scenarios) {
    const bars = COMPARED.filter((tool) => scenario.ratios?.[tool]?.wall != null);
    const rowsInGroup = Math.max(1, bars.length);
    const groupHeight = rowsInGroup * ROW_HEIGHT;
    parts.push(
      `<text x="${LABEL_WIDTH}" y="${round(y + groupHeight / 2 + 4)}" text-anchor="end" class="scenario">${escapeXml(scenario.name)}</text>`,
    );
    if (bars.length === 0) {
      parts.push(`<text x="${round(centre + 6)}" y="${round(y + 14)}" class="note">no comparison measured</text>`);
    }
    bars.forEach((tool, index) => {
      const value = scenario.ratios[tool].wall;
      const top = y + index * ROW_HEIGHT + 3;
      const end = xOf(value);
      const left = Math.min(centre, end);
      const width = Math.max(1, Math.abs(end - centre));
      const faster = value < 1;
      const clipped = value > LIMIT || value < 1 / LIMIT ? (faster ? '◀ ' : ' ▶') : '';
      // Labels go right of the axis (faster) or of the bar (slower): the left side holds names.
      const labelX = faster ? centre + 4 : left + width + 4;
      const label = faster ? `${clipped}${formatRatio(value)} vs ${tool}` : `${formatRatio(value)} vs ${tool}${clipped}`;
      parts.push(
        `<rect x="${round(left)}" y="${round(top)}" width="${round(width)}" height="${ROW_HEIGHT - 6}" class="${faster ? 'faster' : 'slower'}"><title>${escapeXml(`${scenario.name}: ours ÷ ${tool} = ${formatRatio(value)}`)}</title></rect>`,
        `<text x="${round(labelX)}" y="${round(top + 11)}" class="value">${escapeXml(label)}</text>`,
      );
    });
    y += groupHeight + GROUP_GAP;
  }
  const height = y + 30;
  const ticks = [1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8].map((tick) => {
    const x = round(xOf(tick));
    const text = tick < 1 ? `1/${1 / tick}x` : `${tick}x`;
    return (
      `<line x1="${x}" y1="${TOP - 8}" x2="${x}" y2="${y}" class="${tick === 1 ? 'axis' : 'grid'}"/>` +
      `<text x="${x}" y="${y + 16}" text-anchor="middle" class="tick">${text}</text>`
    );
  });
  const machine = result.machine ? `${result.machine.cpus} × ${result.machine.cpuModel}, node ${result.machine.node}` : '';
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    '<style>.scenario{fill:#222}.value{fill:#333;font-size:11px}.note{fill:#888;font-style:italic}' +
      '.tick{fill:#555;font-size:11px}.grid{stroke:#ddd}.axis{stroke:#333;stroke-width:1.5}' +
      '.faster{fill:#2e7d32}.slower{fill:#c62828}.title{font-size:14px;font-weight:bold}.sub{fill:#666;font-size:11px}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="22" class="title">${escapeXml(title)}</text>`,
    `<text x="10" y="40" class="sub">${escapeXml(`${result.quick ? 'quick sizes' : 'full sizes'}; ${machine}`)}</text>`,
    ...ticks,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
