// The frame of a bench script that copies from one nbdkit `pattern` server: its `--name value`
// options, and the server on a socket in a private temp dir that goes away at exit together
// with every child the script still runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** This checkout's nbdcopy, by path so that PATH can never swap in libnbd's. */
export const OUR_NBDCOPY = join(dirname(fileURLToPath(import.meta.url)), '../../bin/nbdcopy');

/**
 * A bench script's failures (a bad option, a server that did not start, a copy that failed)
 * end it with one line on stderr naming the script, and status 1, not a stack trace.
 */
export function failInOneLine(script) {
  const fail = (error) => {
    process.stderr.write(`${script}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
}

/** `option(name, fallback)`: the word after `name` in `argv`, else `fallback`. */
export function optionReader(argv) {
  return (name, fallback) => {
    const i = argv.indexOf(name);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
  };
}

/** `--runs` read with `option`, which must be a positive integer. */
export function runsOption(option, fallback) {
  const text = option('--runs', fallback);
  const runs = Number(text);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs: expected a positive integer, got ${text}`);
  return runs;
}

/**
 * `nbdkit pattern SIZE` on a socket in a new temp dir (under BENCH_TMPDIR, named after
 * `prefix`), once the socket exists. Whatever is in `children` at exit, the server included,
 * is killed then, so that ^C or a thrown error leaves no server behind.
 */
export async function startPatternSource(prefix, size) {
  const dir = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), prefix));
  const sock = join(dir, 'pattern.sock');
  const children = new Set();
  process.on('exit', () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  process.on('SIGINT', () => process.exit(130));
  const server = spawn('nbdkit', ['-f', '-U', sock, 'pattern', size], { stdio: 'inherit' });
  children.add(server);
  // The script ends when its work does, not when the server does: the exit handler stops it.
  server.unref();
  for (let i = 0; !existsSync(sock); i++) {
    if (i > 500) throw new Error('nbdkit did not start');
    await sleep(20);
  }
  return { dir, uri: `nbd+unix:///?socket=${sock}`, children };
}
