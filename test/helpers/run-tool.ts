// Runs command-line tools for tests through execa (a timeout that kills, no orphan when the test
// process ends, errors that name the command) and keeps what the tests compare: exit status,
// stdout and stderr exactly as written.
import { execa, execaSync, type Result, type SyncResult } from 'execa';

export interface RunResult {
  /** The exit status, or null when the tool did not exit by itself (killed, timed out). */
  status: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** The command line, for messages. */
  command: string;
}

export interface RunOptions {
  input?: Buffer | string;
  cwd?: string;
  /** Milliseconds before the tool is killed. */
  timeout?: number;
  /** Extra environment variables. */
  env?: NodeJS.ProcessEnv;
}

/** Our tools print their debug log to stderr when NBD_DEBUG is set: tests compare stderr. */
const QUIET = { NBD_DEBUG: '' };

function common(options: RunOptions) {
  return {
    cwd: options.cwd,
    env: { ...QUIET, ...options.env },
    encoding: 'buffer' as const,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    reject: false,
  };
}

function outcome(r: Result | SyncResult): RunResult {
  const bytes = (v: unknown): Buffer => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : Buffer.alloc(0));
  return {
    status: r.exitCode ?? null,
    signal: (r.signal as NodeJS.Signals | undefined) ?? null,
    stdout: bytes(r.stdout),
    stderr: bytes(r.stderr).toString(),
    command: r.command,
  };
}

/** Runs `bin` to completion, blocking this process (fine without in-process servers). */
export function run(bin: string, args: string[], options: RunOptions = {}): RunResult {
  return outcome(execaSync(bin, args, { ...common(options), input: options.input, timeout: options.timeout ?? 50_000 }));
}

/** Like run(), without blocking this process's event loop (needed with in-process servers). */
export async function runAsync(bin: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const r = await execa(bin, args, {
    ...common(options), input: options.input ?? '', timeout: options.timeout ?? 50_000, killSignal: 'SIGKILL',
  });
  return outcome(r);
}

export interface Started {
  pid: number;
  /** What the tool has written to stdout so far. */
  stdout(): string;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the tool has ended and its pipes are drained. */
  done: Promise<RunResult>;
}

/** Starts `bin` in the background with stdin closed, for tests that act while it runs. */
export function start(bin: string, args: string[], options: RunOptions = {}): Started {
  const child = execa(bin, args, {
    ...common(options), stdin: 'ignore', timeout: options.timeout ?? 40_000, killSignal: 'SIGKILL',
  });
  let stdout = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  return {
    pid: child.pid!,
    stdout: () => stdout,
    kill: (signal) => void child.kill(signal),
    done: child.then(outcome),
  };
}

export interface Outcome {
  stdout: string;
  stderr: string;
  /** The exit status, or -1 when the tool did not exit by itself (killed, timed out, not found). */
  code: number;
}

/** Runs a tool with exactly `env` and keeps its output as text (the CLI comparisons). */
export async function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Outcome> {
  const r = await execa(bin, args, {
    env, extendEnv: false, encoding: 'utf8', stripFinalNewline: false, timeout: 30_000, reject: false, maxBuffer: 64 * 1024 * 1024,
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.exitCode ?? -1 };
}

/** True when `stderr` is one line `<tool>: ...` with no stack trace. */
export function hasExactlyOneErrorLine(stderr: string, tool = 'nbdcopy'): boolean {
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  return lines.length === 1 && lines[0]!.startsWith(`${tool}: `) && !/\n\s+at /.test(stderr);
}
