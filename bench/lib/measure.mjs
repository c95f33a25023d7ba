// One measured run of one command: wall time from our monotonic clock, CPU and peak RSS
// of the tool (and its own children) from GNU time's rusage of the waited process.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawnTracked, stopChild } from './processes.mjs';
import { TIME_FORMAT, parseTimeOutput } from './time-format.mjs';

export const GNU_TIME = '/usr/bin/time';

export function haveGnuTime() {
  return existsSync(GNU_TIME);
}

const STDERR_KEEP = 4096;

function collectTail(stream) {
  let tail = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk) => {
    tail = (tail + chunk).slice(-STDERR_KEEP);
  });
  return () => tail;
}

/**
 * Run argv once and measure it.
 * stdout: 'ignore' sends the tool's stdout to /dev/null; 'count' reads it from a pipe here
 * (chunk lengths added up, so the tool really streams through a pipe) and reports the count.
 */
export async function runMeasured({ argv, env, cwd, tmpDir, stdout = 'ignore', timeoutMs }) {
  const timeFile = join(tmpDir, 'time.out');
  rmSync(timeFile, { force: true });
  const useTime = haveGnuTime();
  const [command, ...args] = useTime ? [GNU_TIME, '-f', TIME_FORMAT, '-o', timeFile, '--', ...argv] : argv;

  const start = process.hrtime.bigint();
  const tool = spawnTracked(command, args, {
    cwd,
    env: env ? { ...process.env, ...env } : process.env,
    stdio: ['ignore', stdout === 'count' ? 'pipe' : 'ignore', 'pipe'],
  });
  const stderrTail = collectTail(tool.child.stderr);

  let counted = 0;
  tool.child.stdout?.on('data', (chunk) => {
    counted += chunk.length;
  });

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopChild(tool);
  }, timeoutMs);
  const exit = await tool.done;
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  clearTimeout(timer);

  const figures = useTime && existsSync(timeFile) ? parseTimeOutput(readFileSync(timeFile, 'utf8')) : null;
  const result = {
    ok: exit.code === 0 && !timedOut,
    wallMs,
    userMs: figures ? figures.userMs : null,
    sysMs: figures ? figures.sysMs : null,
    maxRssKb: figures ? figures.maxRssKb : null,
    exitCode: exit.code,
  };
  if (stdout === 'count') result.stdoutBytes = counted;
  if (timedOut) result.error = `timed out after ${timeoutMs / 1000} s`;
  else if (exit.error) result.error = `cannot start: ${exit.error.message}`;
  else if (!result.ok) result.error = reasonFromStderr(stderrTail()) || `exit status ${exit.code ?? exit.signal}`;
  return result;
}

/**
 * The line of a failed tool's stderr that says why. Node prints a source excerpt before the
 * error itself, so prefer a line that names an error or follows the "tool: what: why" shape.
 */
export function reasonFromStderr(text) {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('Command exited with non-zero status') && !line.startsWith('Command terminated by signal'));
  const telling =
    lines.find((line) => /^[A-Z]\w*Error\b/.test(line)) ??
    lines.find((line) => /^[\w.-]+: .+/.test(line) && !/^(node|code|at):/.test(line)) ??
    lines.find((line) => /Error\b/.test(line));
  return telling ?? lines[0] ?? '';
}
