// nbdcopy --checkpoint: kill -9 at random moments during multi-GiB dense and sparse copies,
// run again with the same FILE: the result equals the source, the second run copies exactly
// what the file did not list, and that is no more than what was not done plus one queue.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { property } from './helpers/property.js';
import { readCheckpoint } from '../src/copy/checkpoint-journal.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { toolSuite } from './helpers/tool-suite.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
/** One queue of in-flight work with nbdcopy's defaults: 4 connections × --queue-size 16M. */
const QUEUE = 4 * 16 * MiB;
/** Kill moments per copy (each a multi-GiB copy, run again to the end). */
const RUNS = 3;
const have = requireBinaries('nbdkit');
const suite = toolSuite();
const servers = suite.servers;

/**
 * An nbdkit that can be started again on the same socket (so the URI, which the checkpoint
 * records, stays the same): nbdkit 1.32 may abort (raw_send_socket: Assertion `sock >= 0')
 * when a client dies with reads in flight, which kill -9 does.
 */
async function restartable(name: string, args: string[]): Promise<{ uri: string; restart(args?: string[]): Promise<void> }> {
  const home = path.join(suite.dir, name);
  fs.mkdirSync(home, { recursive: true });
  let server = await startNbdkit(args, { dir: home });
  servers.push(server);
  return {
    uri: server.uri,
    async restart(again = args) {
      await server.stop();
      fs.mkdirSync(home, { recursive: true });
      server = await startNbdkit(again, { dir: home });
      servers.push(server);
    },
  };
}

/** Starts our nbdcopy and kills it with SIGKILL after `ms`; resolves with its exit status. */
function runAndKill(args: string[], ms: number): Promise<number | null> {
  const child = spawn(OUR_NBDCOPY, args, { cwd: suite.dir, stdio: 'ignore' });
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  return new Promise((resolve) => child.on('exit', (status) => {
    clearTimeout(timer);
    resolve(status);
  }));
}

/** Our block hash of an image: how the test compares two multi-GiB images. */
function blockHash(image: string): string {
  const r = run(OUR_NBDCOPY, ['--blkhash', image, 'null:'], { cwd: suite.dir, timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.toString();
}

/** Bytes the destination server acknowledged (writes and zeroes), from nbdkit's log filter. */
function acknowledged(logFile: string): number {
  const sizes = new Map<string, number>();
  let bytes = 0;
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    const start = /connection=(\d+) (Write|Zero|Trim) id=(\d+) offset=0x[0-9a-f]+ count=(0x[0-9a-f]+)/.exec(line);
    if (start !== null) sizes.set(`${start[1]}/${start[3]}`, Number(start[4]));
    const end = /connection=(\d+) \.\.\.(Write|Zero|Trim) id=(\d+) return=0/.exec(line);
    if (end !== null) bytes += sizes.get(`${end[1]}/${end[3]}`) ?? 0;
  }
  return bytes;
}

interface Resumed { copied: number; before: number }

function resume(args: string[]): Resumed {
  const r = run(OUR_NBDCOPY, ['-v', ...args], { cwd: suite.dir, timeout: 240_000 });
  expect(r.status, r.stderr.slice(-2000)).toBe(0);
  const m = /checkpoint: done, .* removed \(\d+ saves; this run copied (\d+) bytes, (\d+) were done before\)/.exec(r.stderr);
  expect(m, r.stderr.slice(-2000)).not.toBeNull();
  return { copied: Number(m![1]), before: Number(m![2]) };
}

const DENSE = 'dense 2 GiB into an NBD server, killed at a random moment';
const dense = property<[number]>({ file: import.meta.url, name: DENSE, runs: RUNS, caseMs: 300_000, shrinkMs: 5 * 60_000 });
const SPARSE = 'sparse 4 GiB into a local file, killed at a random moment';
const sparse = property<[number, number]>({ file: import.meta.url, name: SPARSE, runs: RUNS, caseMs: 300_000, shrinkMs: 5 * 60_000 });
/** Names each copy's servers and files apart. */
let copies = 0;

describe.skipIf(!have)('nbdcopy --checkpoint', () => {
  it.prop([fc.integer({ min: 200, max: 2699 })], dense.parameters)(DENSE, async (killAfterMs) => {
    const seed = ++copies;
    const size = 2 * GiB;
    const source = await restartable(`pattern-${seed}`, ['pattern', String(size)]);
    const disk = path.join(suite.dir, `dense-${seed}.img`);
    fs.writeFileSync(disk, '');
    fs.truncateSync(disk, size);
    const logFile = path.join(suite.dir, `dense-${seed}.log`);
    const destination = await restartable(`file-${seed}`, ['--filter=log', 'file', disk, `logfile=${logFile}`]);
    const file = path.join(suite.dir, `dense-${seed}.ckpt`);
    const status = await runAndKill([`--checkpoint=${file}`, source.uri, destination.uri], killAfterMs);
    await source.restart();
    await destination.restart(['file', disk]);
    const acked = acknowledged(logFile);
    const journal = await readCheckpoint(file);
    if (status === 0) {
      // Finished before the kill: nothing to resume, and no checkpoint left behind.
      expect(journal).toBeUndefined();
    } else {
      const listed = journal === undefined ? 0 : journal.done.reduce((n, [s, e]) => n + e - s, 0);
      const r = resume([`--checkpoint=${file}`, source.uri, destination.uri]);
      expect(r.before).toBe(listed);
      expect(r.copied).toBe(size - listed);
      // What the server acknowledged before the kill is at most one queue more than what
      // nbdcopy had seen done; the second run redid at most one more queue of that.
      expect(r.copied).toBeLessThanOrEqual(size - acked + 2 * QUEUE);
      expect(fs.existsSync(file)).toBe(false);
    }
    expect(blockHash(disk)).toBe(blockHash(source.uri));
    fs.rmSync(disk);
  }, dense.timeout);

  it.prop([fc.integer({ min: 150, max: 1649 }), fc.nat()], sparse.parameters)(SPARSE, async (killAfterMs, dataSeed) => {
    const seed = ++copies;
    const size = 4 * GiB;
    const source = await restartable(`sparse-${seed}`, ['sparse-random', String(size), `seed=${dataSeed}`, 'percent=20']);
    const out = path.join(suite.dir, `sparse-${seed}.img`);
    const file = path.join(suite.dir, `sparse-${seed}.ckpt`);
    const status = await runAndKill([`--checkpoint=${file}`, source.uri, out], killAfterMs);
    await source.restart();
    const journal = await readCheckpoint(file);
    if (status === 0) {
      expect(journal).toBeUndefined();
    } else {
      const listed = journal === undefined ? 0 : journal.done.reduce((n, [s, e]) => n + e - s, 0);
      const r = resume([`--checkpoint=${file}`, source.uri, out]);
      expect(r.before).toBe(listed);
      expect(r.copied).toBe(size - listed);
    }
    expect(fs.statSync(out).size).toBe(size);
    expect(blockHash(out)).toBe(blockHash(source.uri));
    fs.rmSync(out);
  }, sparse.timeout);

  it('refuses a checkpoint of another copy in one line, writing nothing', async () => {
    const a = path.join(suite.dir, 'a.img');
    const b = path.join(suite.dir, 'b.img');
    fs.writeFileSync(a, Buffer.alloc(4 * MiB, 1));
    fs.writeFileSync(b, Buffer.alloc(4 * MiB, 2));
    const file = path.join(suite.dir, 'other.ckpt');
    // A checkpoint left by a copy of a.img that was interrupted.
    fs.writeFileSync(file, JSON.stringify({
      format: 'nbd-toolkit checkpoint 1',
      identity: { source: { name: a, size: 4 * MiB }, destination: { name: b, size: 4 * MiB }, options: { allocated: false, destinationIsZero: false } },
      done: [[0, MiB]],
    }));
    const c = path.join(suite.dir, 'c.img');
    fs.writeFileSync(c, Buffer.alloc(2 * MiB, 3));
    const cases: Array<[string[], string]> = [
      [[`--checkpoint=${file}`, c, b], `nbdcopy: --checkpoint: ${file} belongs to another copy: it is for source "${a}", not "${c}"`],
      [[`--checkpoint=${file}`, '--allocated', a, b], `nbdcopy: --checkpoint: ${file} belongs to another copy: it was made with allocated=false, this copy has allocated=true`],
      [[`--checkpoint=${file}`, a, '-'], 'nbdcopy: --checkpoint: a copy to stdout cannot be resumed'],
      [[`--checkpoint=${file}`, '-', b], 'nbdcopy: --checkpoint: a copy from stdin cannot be resumed'],
      [['--checkpoint=', a, b], "nbdcopy: --checkpoint: expected a value, got ''"],
      [[`--checkpoint=${file}`, '--blkhash', a, b], 'nbdcopy: --checkpoint cannot be combined with --blkhash or --verify (a resumed copy does not read what was done before)'],
    ];
    for (const [args, message] of cases) {
      const r = run(OUR_NBDCOPY, args, { cwd: suite.dir });
      expect(r.stderr).toBe(`${message}\n`);
      expect(hasExactlyOneErrorLine(r.stderr)).toBe(true);
      expect(r.status).toBe(1);
    }
    expect(fs.readFileSync(b).equals(Buffer.alloc(4 * MiB, 2))).toBe(true);
    // The right copy resumes from it: only [1 MiB, 4 MiB) is copied, and b becomes a.
    const r = resume([`--checkpoint=${file}`, a, b]);
    expect(r).toEqual({ copied: 3 * MiB, before: MiB });
    expect(fs.readFileSync(b).subarray(MiB).equals(Buffer.alloc(3 * MiB, 1))).toBe(true);
    expect(fs.readFileSync(b).subarray(0, MiB).equals(Buffer.alloc(MiB, 2))).toBe(true);
  });
});
