// Runs a command-line tool to completion and keeps what the CLI tests compare: stdout, stderr
// and the exit code.
import { execFile } from 'node:child_process';

export interface Outcome {
  stdout: string;
  stderr: string;
  /** The exit status, or -1 when the tool did not exit by itself (killed, timed out, not found). */
  code: number;
}

export function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(bin, args, { encoding: 'utf8', timeout: 30_000, env }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? (typeof err.code === 'number' ? err.code : -1) : 0 });
    });
  });
}
