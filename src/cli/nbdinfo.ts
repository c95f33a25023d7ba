// nbdinfo: argv -> options -> one run -> all output written at once -> exit status.
// Start-up time matters (scripts run it in loops), so only the argument parser is loaded
// eagerly; the client, probing and renderers load once a server is actually needed.
// node:fs is loaded by Node's own bootstrap, so importing it statically costs nothing, while a
// dynamic import() would start the ESM loader in the single-file CommonJS bundle.
import { readFileSync } from 'node:fs';
import { parseArgs, UsageError, LONG_OPTIONS, SHORT_OPTIONS, type ParsedArgs } from '../info/argv.js';
import { errorLine } from './report-error.js';
import { endBySignal, onStopSignals } from './signals.js';

const TOOL = 'nbdinfo';

function debugWanted(): boolean {
  return process.env['NBD_DEBUG'] === '1';
}

function write(stream: NodeJS.WriteStream, text: string): Promise<void> {
  if (text === '') return Promise.resolve();
  // A pipe takes 64 KiB at once; the rest is queued, so wait for it before exiting.
  // A reader that went away (nbdinfo ... | head -1) is not our failure: stop quietly.
  return new Promise((resolve) => {
    stream.once('error', () => resolve());
    stream.write(text, () => resolve());
  });
}

async function finish(stdout: string, errors: string[], status: number): Promise<never> {
  await write(process.stdout, stdout);
  await write(process.stderr, errors.map((e) => `${errorLine(TOOL, e)}\n`).join(''));
  // Exiting explicitly means a stray handle can never hang a script; everything was closed.
  process.exit(status);
}

async function version(): Promise<string> {
  let v = 'unknown';
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    v = pkg.version ?? v;
  } catch {
    // The version line is informative only.
  }
  return `${TOOL} ${v}\nnbd-toolkit ${v}\n`;
}

export async function main(argv: string[]): Promise<void> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) return finish('', [err.message], 1);
    throw err;
  }
  switch (parsed.action) {
    case 'help': {
      const { HELP_TEXT } = await import('../info/help.js');
      return finish(HELP_TEXT, [], 0);
    }
    case 'version':
      return finish(await version(), [], 0);
    case 'long-options': {
      const names = LONG_OPTIONS.map(([n]) => n).filter((n) => n !== 'long-options' && n !== 'short-options');
      return finish(names.map((n) => `--${n}\n`).join(''), [], 0);
    }
    case 'short-options':
      return finish(SHORT_OPTIONS.map((c) => `-${c}\n`).join(''), [], 0);
    case 'run':
      break;
  }
  // A server may hang or a map may be long: on SIGINT/SIGTERM stop its subprocess, then die.
  onStopSignals((signal) => void endBySignal(TOOL, signal));
  try {
    const { environmentFor } = await import('../info/connect.js');
    const { runInfo } = await import('../info/run.js');
    const env = environmentFor(parsed.options.target, Boolean(process.stdout.isTTY));
    const result = await runInfo(parsed.options, env);
    return await finish(result.stdout, result.errors, result.exitCode);
  } catch (err) {
    const { explain } = await import('../info/explain.js');
    let text = `${errorLine(TOOL, explain(err))}\n`;
    if (debugWanted() && err instanceof Error && err.stack) text += `${err.stack}\n`;
    await write(process.stderr, text);
    process.exit(1);
  }
}
