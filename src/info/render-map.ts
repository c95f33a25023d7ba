// nbdinfo --map [--json]: one line (or JSON object) per run of extents of the same type.
import type { MapFacts } from './facts.js';
import { ANSI } from './ansi.js';
import { describeExtent } from './extent-description.js';
import { jsonString } from './json-string.js';
import { mergeExtents } from './merge-extents.js';
import { padNumber } from './printf.js';

export function renderMapText(facts: MapFacts, colour: boolean): string {
  let out = '';
  for (const e of mergeExtents(facts.extents)) {
    const style = describeExtent(facts.context, e.type);
    let line = `${padNumber(e.offset, 10)}  ${padNumber(e.length, 10)}  ${padNumber(e.type, 3)}`;
    if (style.description !== undefined) line += `  ${style.description}`;
    if (colour && (style.fg || style.bg)) line = (style.fg ?? '') + (style.bg ?? '') + line + ANSI.restore;
    out += line + '\n';
  }
  return out;
}

export function renderMapJson(facts: MapFacts): string {
  const items = mergeExtents(facts.extents).map((e) => {
    const style = describeExtent(facts.context, e.type);
    let item = `{ "offset": ${e.offset}, "length": ${e.length}, "type": ${e.type}`;
    if (style.description !== undefined) item += `, "description": ${jsonString(style.description)}`;
    return item + '}';
  });
  return `[\n${items.join(',\n')}\n]\n`;
}
