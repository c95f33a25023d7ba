// nbdinfo --map --totals [--json]: bytes and share of the export per extent type, types in
// ascending order.
import type { MapFacts } from './facts.js';
import { ANSI } from './ansi.js';
import { describeExtent } from './extent-description.js';
import { jsonString } from './json-string.js';
import { formatG, formatPercent1, padNumber } from './printf.js';

export interface TypeTotal {
  type: number;
  bytes: number;
  percent: number;
}

export function totalsByType(facts: MapFacts): TypeTotal[] {
  const bytes = new Map<number, number>();
  for (const e of facts.extents) bytes.set(e.flags, (bytes.get(e.flags) ?? 0) + e.length);
  return [...bytes.entries()]
    .filter(([, n]) => n > 0)
    .sort((a, b) => a[0] - b[0])
    .map(([type, n]) => ({ type, bytes: n, percent: (100 * n) / facts.size }));
}

export function renderTotalsText(facts: MapFacts, colour: boolean): string {
  if (facts.size === 0) return '';
  let out = '';
  for (const t of totalsByType(facts)) {
    const style = describeExtent(facts.context, t.type);
    let line = `${padNumber(t.bytes, 10)} ${formatPercent1(t.percent)}% ${padNumber(t.type, 3)}`;
    if (style.description !== undefined) line += ` ${style.description}`;
    if (colour && (style.fg || style.bg)) line = (style.fg ?? '') + (style.bg ?? '') + line + ANSI.restore;
    out += line + '\n';
  }
  return out;
}

export function renderTotalsJson(facts: MapFacts): string {
  if (facts.size === 0) return '[]\n';
  const items = totalsByType(facts).map((t) => {
    const style = describeExtent(facts.context, t.type);
    let item = `{ "size": ${t.bytes}, "percent": ${formatG(t.percent)}, "type": ${t.type}`;
    if (style.description !== undefined) item += `, "description": ${jsonString(style.description)}`;
    return item + ' }';
  });
  return `[\n${items.join(',\n')}\n]\n`;
}
