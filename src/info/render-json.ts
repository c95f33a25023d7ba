// nbdinfo --json (and --list --json): the exact bytes libnbd 1.14 writes, key order, tabs and
// all, so that scripts diffing or parsing either tool see the same thing.
import { canFlags, statedBlockSizes } from './export-flags.js';
import type { ExportFacts, ShowFacts } from './facts.js';
import { humanSize } from './human-size.js';
import { jsonString } from './json-string.js';

function renderExportJson(e: ExportFacts): string {
  let out = '\t{\n';
  out += `\t"export-name": ${jsonString(e.name)},\n`;
  if (e.description) out += `\t"description": ${jsonString(e.description)},\n`;
  if (e.content !== undefined) out += `\t"content": ${jsonString(e.content)},\n`;
  if (e.uri !== undefined) out += `\t"uri": ${jsonString(e.uri)},\n`;
  if (e.contexts) {
    out += '\t"contexts": [\n';
    out += e.contexts.map((c) => `\t\t${jsonString(c)}`).join(',\n');
    if (e.contexts.length > 0) out += '\n';
    out += '\t],\n';
  }
  const flags: Array<[string, boolean]> = [
    ['is_rotational', e.isRotational],
    ['is_read_only', e.isReadOnly],
    ...canFlags(e),
  ];
  for (const [name, value] of flags) out += `\t"${name}": ${value ? 'true' : 'false'},\n`;
  for (const [name, value] of statedBlockSizes(e)) out += `\t"${name}": ${value},\n`;
  out += `\t"export-size": ${e.exactSize},\n`;
  out += `\t"export-size-str": ${jsonString(humanSize(e.exactSize).text)}\n`;
  return out;
}

export function renderShowJson(facts: ShowFacts): string {
  const c = facts.connection;
  let out = '{\n';
  out += `"protocol": ${jsonString(c.protocol)},\n`;
  out += `"TLS": ${c.tls ? 'true' : 'false'},\n`;
  out += `"structured": ${c.structured ? 'true' : 'false'},\n`;
  if (facts.exports.length === 0) {
    out += '"exports": []\n';
  } else {
    out += '"exports": [\n';
    out += facts.exports.map(renderExportJson).join('\t},\n');
    out += '\t} ]\n';
  }
  return out + '}\n';
}
