// One nbdinfo run: options in, output text and exit code out. The whole output is built
// before anything is written, so a failure never leaves half a report on stdout.
import { NbdError } from '../protocol/errors.js';
import type { InfoOptions } from './argv.js';
import { canExitCode, canQuestion } from './can.js';
import type { Opener } from './client-port.js';
import type { ExportFailure, ProbeContext } from './probe.js';
import { formatExportUri, type UriParts } from './uri-format.js';
import { jsonString } from './json-string.js';

export interface RunResult {
  stdout: string;
  /** One line per problem, without the "nbdinfo: " prefix. */
  errors: string[];
  exitCode: number;
}

export interface RunEnvironment {
  /** Colour when neither --color nor --no-color was given. */
  stdoutIsTerminal: boolean;
  open: Opener;
  exportName: string;
  uriParts?: UriParts;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function failureLine(f: ExportFailure): string {
  return message(f.error);
}

export async function runInfo(options: InfoOptions, env: RunEnvironment): Promise<RunResult> {
  const colour = options.colour ?? env.stdoutIsTerminal;
  const probe = await import('./probe.js');
  const ctx: ProbeContext = { open: env.open, exportName: env.exportName, content: options.content };
  if (env.uriParts) ctx.uriParts = env.uriParts;

  switch (options.mode) {
    case 'size': {
      const size = await probe.probeSize(ctx);
      return { stdout: `${size}\n`, errors: [], exitCode: 0 };
    }
    case 'can': {
      const name = options.can ?? '';
      const question = canQuestion(name);
      // libnbd checks the name only after connecting; checking first avoids a useless connection.
      if (!question) throw new NbdError('EINVAL', `unknown --can or --is option: ${name}`);
      const answer = await probe.probeCan(ctx, (client, info) => question(client.connection, info));
      return { stdout: '', errors: [], exitCode: canExitCode(options.negated === true ? !answer : answer) };
    }
    case 'uri': {
      // A subprocess listens on a private socket that is gone once we exit: nothing to print.
      const parts = env.uriParts;
      if (!parts) throw new NbdError('EINVAL', '--uri: a [ CMD ARGS ] server has no URI');
      const tls = await probe.probeCan(ctx, (client) => client.connection.tls);
      const uri = formatExportUri({ ...parts, tls: parts.tls || tls }, env.exportName);
      return { stdout: `${options.json ? jsonString(uri) : uri}\n`, errors: [], exitCode: 0 };
    }
    case 'map': {
      const facts = await probe.probeMap(ctx, options.map ?? 'base:allocation');
      if (options.totals) {
        const r = await import('./render-totals.js');
        return { stdout: options.json ? r.renderTotalsJson(facts) : r.renderTotalsText(facts, colour), errors: [], exitCode: 0 };
      }
      const r = await import('./render-map.js');
      return { stdout: options.json ? r.renderMapJson(facts) : r.renderMapText(facts, colour), errors: [], exitCode: 0 };
    }
    case 'show':
    case 'list': {
      let facts;
      let errors: string[] = [];
      if (options.mode === 'list') {
        const listed = await probe.probeList(ctx);
        facts = listed.facts;
        errors = listed.failures.map(failureLine);
      } else {
        facts = await probe.probeShow(ctx);
      }
      let stdout: string;
      if (options.json) {
        const { renderShowJson } = await import('./render-json.js');
        stdout = renderShowJson(facts);
      } else {
        const { renderShowText } = await import('./render-text.js');
        stdout = renderShowText(facts, { colour });
      }
      return { stdout, errors, exitCode: errors.length > 0 ? 1 : 0 };
    }
  }
}
