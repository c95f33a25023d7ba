// Default (human-readable) output of nbdinfo and nbdinfo --list, line for line as libnbd 1.14
// prints it, colours included.
import { ANSI } from './ansi.js';
import { canFlags, statedBlockSizes } from './export-flags.js';
import type { ConnectionFacts, ExportFacts, ShowFacts } from './facts.js';
import { humanSize } from './human-size.js';
import { jsonString } from './json-string.js';

export interface TextStyle {
  colour: boolean;
}

export function renderConnectionText(c: ConnectionFacts, style: TextStyle): string {
  const line =
    `protocol: ${c.protocol} ${c.tls ? 'with' : 'without'} TLS, ` +
    `using ${c.structured ? 'structured' : 'simple'} packets\n`;
  return style.colour ? ANSI.fgGrey + line + ANSI.restore : line;
}

function bool(v: boolean): string {
  return v ? 'true' : 'false';
}

export function renderExportText(e: ExportFacts, style: TextStyle): string {
  const { colour } = style;
  let out = colour ? ANSI.fgBoldBlack : '';
  // The name goes through JSON quoting so that odd names stay on one line.
  out += `export=${jsonString(e.name)}:\n`;
  if (e.description) out += `\tdescription: ${e.description}\n`;
  const human = humanSize(e.exactSize);
  out += human.abbreviated ? `\texport-size: ${e.exactSize} (${human.text})\n` : `\texport-size: ${e.exactSize}\n`;
  if (e.content !== undefined) out += `\tcontent: ${e.content}\n`;
  if (e.uri !== undefined) out += `\turi: ${e.uri}\n`;
  if (colour) out += ANSI.restore + ANSI.fgGrey;
  if (e.contexts) {
    out += '\tcontexts:\n';
    for (const name of e.contexts) out += `\t\t${name}\n`;
  }
  out += `\tis_rotational: ${bool(e.isRotational)}\n`;
  if (colour) out += ANSI.restore;
  out += `\tis_read_only: ${bool(e.isReadOnly)}\n`;
  for (const [name, value] of canFlags(e)) {
    const line = `\t${name}: ${bool(value)}\n`;
    out += colour ? (value ? ANSI.fgGreen : ANSI.fgRed) + line + ANSI.restore : line;
  }
  for (const [name, value] of statedBlockSizes(e)) out += `\t${name}: ${value}\n`;
  return out;
}

export function renderShowText(facts: ShowFacts, style: TextStyle): string {
  let out = renderConnectionText(facts.connection, style);
  for (const e of facts.exports) out += renderExportText(e, style);
  return out;
}
