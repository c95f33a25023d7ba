// Randomised faults: generated disks copied with generated options while the source or the
// destination server fails requests (nbdkit's error filter: one kind of request or all, at a
// rate of 1% to 100%) or is killed mid-copy, or while nbdcopy itself gets SIGINT or SIGTERM.
// Whatever happens, our nbdcopy must either succeed with the right bytes in the destination,
// or exit 1 with exactly one line and no stack; never hang, never leave a subprocess server
// behind, and never succeed when a fault could not be missed (every data read, or every data
// write, failing).
// Cases come from fast-check (test/helpers/property.ts): a failure shrinks to its smallest
// case and prints the FUZZ_SEED / FUZZ_PATH command that replays it; FUZZ_RUNS=<n> widens a run.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fc, it } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { disk, writeDisk, type Disk } from './helpers/disk-layouts.js';
import { chance, maybe, property } from './helpers/property.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { hasExactlyOneErrorLine, start } from './helpers/run-tool.js';
import { sha256, sha256File } from './helpers/files.js';
import { makeTempDir } from './helpers/temp.js';

const MiB = 1 << 20;
const CASES = 40;
const TIMEOUT_MS = 60_000;

type Side = 'source' | 'destination';
/** A request kind of nbdkit's error filter, or every kind. */
type Op = 'pread' | 'pwrite' | 'zero' | 'trim' | 'extents' | 'all';

interface Fault {
  side: Side;
  /**
   * Injected errors; the server killed `killAfterMs` after the copy started; or our nbdcopy
   * itself sent SIGINT or SIGTERM then (the user's ^C, a service manager stopping it).
   */
  kind: 'errors' | 'kill' | 'SIGINT' | 'SIGTERM';
  op: Op;
  rate: string;
  errno: string;
  killAfterMs: number;
}

interface Case {
  disk: Disk;
  /** The source server as a URI, or as a `[ CMD ]` subprocess. */
  source: 'nbd' | 'command';
  destination: 'nbd' | 'file' | 'null' | 'stdout';
  fault: Fault;
  options: string[];
}

/** One of `items` by a generated index (a failure shrinks to the first). */
const nth = <T>(items: readonly T[], n: number): T => items[n % items.length]!;

const caseSpec: fc.Arbitrary<Case> = fc.record({
  disk: disk([MiB + 1, 5 * MiB, 24 * MiB + 511]),
  source: fc.constantFrom('nbd', 'nbd', 'command') as fc.Arbitrary<Case['source']>,
  destination: fc.constantFrom('nbd', 'nbd', 'file', 'null', 'stdout') as fc.Arbitrary<Case['destination']>,
  onDestination: chance(0.5),
  kind: fc.nat(),
  op: fc.nat(),
  rate: fc.constantFrom('100%', '100%', '10%', '1%'),
  errno: fc.constantFrom('EIO', 'ENOSPC', 'EPERM', 'ESHUTDOWN'),
  killAfterMs: fc.nat({ max: 149 }),
  connections: maybe(0.4, fc.integer({ min: 1, max: 4 })),
  requests: maybe(0.4, fc.constantFrom(1, 2, 7, 64)),
  requestSize: maybe(0.3, fc.constantFrom(4096, 65536, MiB)),
  sparse: maybe(0.3, fc.constantFrom(0, 512, 65536)),
  allocated: chance(0.2),
  noExtents: chance(0.2),
  synchronous: chance(0.15),
  flush: chance(0.2),
}).map((g) => {
  // Only servers we started ourselves can have faults on the destination side, or be killed.
  const side: Side = g.destination === 'nbd' && g.onDestination ? 'destination' : 'source';
  const fault: Fault = {
    side,
    kind: nth(g.source === 'nbd' || side === 'destination'
      ? ['errors', 'errors', 'errors', 'kill', 'SIGINT', 'SIGTERM'] as const
      : ['errors', 'errors', 'errors', 'SIGINT', 'SIGTERM'] as const, g.kind),
    op: side === 'source' ? nth(['pread', 'pread', 'extents', 'all'] as const, g.op) : nth(['pwrite', 'pwrite', 'zero', 'trim', 'all'] as const, g.op),
    rate: g.rate,
    errno: g.errno,
    killAfterMs: g.killAfterMs,
  };
  const options = [
    ...(g.connections !== undefined ? [`--connections=${g.connections}`] : []),
    ...(g.requests !== undefined ? [`--requests=${g.requests}`] : []),
    ...(g.requestSize !== undefined ? [`--request-size=${g.requestSize}`] : []),
    ...(g.sparse !== undefined ? [`--sparse=${g.sparse}`] : []),
    ...(g.allocated ? ['--allocated'] : []),
    ...(g.noExtents ? ['--no-extents'] : []),
    ...(g.synchronous ? ['--synchronous'] : []),
    ...(g.flush ? ['--flush'] : []),
  ];
  return { disk: g.disk, source: g.source, destination: g.destination, fault, options };
});

/** nbdkit arguments that put the fault on a server: the error filter's, or none. */
function errorArgs(f: Fault, side: Side): { filters: string[]; params: string[] } {
  if (f.kind !== 'errors' || f.side !== side) return { filters: [], params: [] };
  const prefix = f.op === 'all' ? 'error' : `error-${f.op}`;
  return { filters: ['--filter=error'], params: [`${prefix}=${f.errno}`, `${prefix}-rate=${f.rate}`] };
}

/** True when the fault cannot miss: every read of data, or every write of data, fails. */
function mustFail(c: Case): boolean {
  const hasData = c.disk.segments.some((s) => s.kind === 'data');
  const f = c.fault;
  if (f.kind !== 'errors' || f.rate !== '100%' || !hasData) return false;
  return f.side === 'source' ? f.op === 'pread' || f.op === 'all' : f.op === 'pwrite' || f.op === 'all';
}

/** Lines our nbdcopy wrote: a `[ CMD ]` server shares our stderr and may add its own. */
function ourLines(stderr: string): string {
  return stderr.split('\n').filter((l) => l.startsWith('nbdcopy:') || /^\s+at /.test(l)).join('\n') + '\n';
}

const have = requireBinaries('nbdkit');
// Servers a test started, stopped after it.
const teardown = teardownAfterEach<RunningServer>();
const { servers } = teardown;
let dir: string;

async function nbdkit(...args: string[]): Promise<RunningServer> {
  const s = await startNbdkit(args);
  servers.push(s);
  return s;
}

interface Run {
  status: number | null;
  /** The signal that ended nbdcopy, when one did. */
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs our nbdcopy; after `killAfterMs`, stops `victim` (a server) or sends nbdcopy `signal`
 * when given. SIGKILL at the timeout.
 */
function runOurs(args: string[], victim: RunningServer | undefined, signal: NodeJS.Signals | undefined, killAfterMs: number): Promise<Run> {
  const ours = start(OUR_NBDCOPY, args, { cwd: dir, timeout: TIMEOUT_MS });
  const killer = victim ? setTimeout(() => void victim.stop(), killAfterMs)
    : signal ? setTimeout(() => ours.kill(signal), killAfterMs) : undefined;
  return ours.done.then((r) => {
    clearTimeout(killer);
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  });
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const NAME = 'nbdcopy under generated faults';
const cases = property<[Case]>({ file: import.meta.url, name: NAME, runs: CASES, caseMs: TIMEOUT_MS + 30_000, afterEach: teardown.now });
let i = 0;

describe.skipIf(!have)('nbdcopy under faults', () => {
  it.prop([caseSpec], cases.parameters)(NAME, async (c) => {
    i++;
    // A unique image path also names the `[ CMD ]` server's process, to look for it afterwards.
    const image = path.join(dir, `src-${i}-${process.pid}.img`);
    writeDisk(image, c.disk);
    const f = c.fault;

    const src = errorArgs(f, 'source');
    const sourceServer = c.source === 'nbd' ? await nbdkit('-r', ...src.filters, 'file', image, ...src.params) : undefined;
    const source = sourceServer ? [sourceServer.uri] : ['--', '[', 'nbdkit', '-r', ...src.filters, 'file', image, ...src.params, ']'];
    const dst = errorArgs(f, 'destination');
    const out = path.join(dir, `out-${i}.img`);
    // An NBD destination writes into a file we can read back without going through the
    // server (whose filter may fail reads too).
    const served = path.join(dir, `served-${i}.img`);
    if (c.destination === 'nbd') fs.writeFileSync(served, '');
    if (c.destination === 'nbd') fs.truncateSync(served, c.disk.size);
    const destinationServer = c.destination === 'nbd' ? await nbdkit(...dst.filters, 'file', served, ...dst.params) : undefined;
    const destination = destinationServer?.uri ?? (c.destination === 'file' ? out : c.destination === 'null' ? 'null:' : '-');
    const victim = f.kind === 'kill' ? (f.side === 'source' ? sourceServer : destinationServer) : undefined;

    const signal = f.kind === 'SIGINT' || f.kind === 'SIGTERM' ? f.kind : undefined;
    const r = await runOurs([...c.options, ...source, destination], victim, signal, f.killAfterMs);

    // After a signal nbdcopy ends BY it, as C tools do: with nothing printed when it landed
    // while Node itself was still starting (before our handlers), else with our one line once
    // the copy stopped and the server was reaped. A copy that finished first exits 0.
    const bySignal = signal !== undefined && r.signal === signal;
    if (!bySignal) {
      expect(r.signal, `nbdcopy did not finish within ${TIMEOUT_MS} ms`).toBeNull();
      expect(signal === undefined ? [0, 1] : [0]).toContain(r.status);
    }
    if (bySignal) {
      const mine = c.source === 'command' ? ourLines(r.stderr) : r.stderr;
      expect(['', `nbdcopy: interrupted by ${signal}`], r.stderr).toContain(mine.trim());
    } else if (r.status === 1) {
      const mine = c.source === 'command' ? ourLines(r.stderr) : r.stderr;
      expect(hasExactlyOneErrorLine(mine), r.stderr).toBe(true);
    } else {
      expect(mustFail(c), 'succeeded although every data read or write failed').toBe(false);
      expect(r.stderr).toBe('');
      const want = sha256File(image);
      if (c.destination === 'file') expect(sha256File(out)).toBe(want);
      if (c.destination === 'stdout') expect(sha256(r.stdout)).toBe(want);
      if (c.destination === 'nbd') expect(sha256File(served)).toBe(want);
    }
    // The `[ CMD ]` server went with us (give it a moment to notice its client left).
    if (c.source === 'command') {
      let left = '';
      for (let t = 0; t < 40; t++) {
        left = spawnSync('pgrep', ['-f', image]).stdout.toString().trim();
        if (left === '') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(left, 'subprocess server still running').toBe('');
    }
    fs.rmSync(image);
    fs.rmSync(out, { force: true });
    fs.rmSync(served, { force: true });
  }, cases.timeout);
});
