// How many connections our bin/nbdcopy opens to each server, against libnbd's nbdcopy on the
// same servers (nbdkit's log filter records every connection): a drop-in opens what libnbd
// opens, whatever the options, the endpoint kinds and the servers' multi-conn.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNbdkit, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { LIBNBD_NBDCOPY, OUR_NBDCOPY, ensureBuilt } from './helpers/build.js';
import { noise } from './helpers/files.js';
import { run } from './helpers/run-tool.js';
import { makeTempDir } from './helpers/temp.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { countCpuList, onlineCpus } from '../src/sys/cpus.js';

const MiB = 1 << 20;
/** libnbd opens all its connections before the copy, however small the disk. */
const SIZE = 8 * MiB;
const have = requireBinaries('nbdkit', LIBNBD_NBDCOPY);
const { servers } = teardownAfterEach<RunningServer>();
let dir: string;
let local: string;

/** A server behind nbdkit's log filter, and how many connections have negotiated with it so far
 * (not counting the harness's readiness probe, which never gets as far as a handshake). */
interface Logged {
  uri: string;
  seen(): number;
}

async function logged(name: string, ...args: string[]): Promise<Logged> {
  const logfile = path.join(dir, `${name}-${servers.length}.log`);
  const s = await startNbdkit(['--filter=log', ...args, `logfile=${logfile}`]);
  servers.push(s);
  return {
    uri: s.uri,
    seen: () => (fs.existsSync(logfile) ? fs.readFileSync(logfile, 'utf8').match(/connection=\d+ Connect /g)?.length ?? 0 : 0),
  };
}

/** Connections each server saw during one run of `bin` (which must succeed). */
function counted(bin: string, args: (uri: Record<string, string>) => string[], logs: Record<string, Logged>): Record<string, number> {
  const before = Object.fromEntries(Object.entries(logs).map(([k, l]) => [k, l.seen()]));
  const uris = Object.fromEntries(Object.entries(logs).map(([k, l]) => [k, l.uri]));
  const r = run(bin, args(uris), { cwd: dir });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return Object.fromEntries(Object.entries(logs).map(([k, l]) => [k, l.seen() - before[k]!]));
}

beforeAll(() => {
  if (!have) return;
  ensureBuilt();
  dir = makeTempDir();
  local = path.join(dir, 'local.img');
  fs.writeFileSync(local, noise(SIZE, 7));
});
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('online CPUs as glibc counts them', () => {
  it('parses sysfs CPU lists', () => {
    expect(countCpuList('0\n')).toBe(1);
    expect(countCpuList('0-1\n')).toBe(2);
    expect(countCpuList('0-3,6,8-9')).toBe(7);
    expect(countCpuList('')).toBe(0);
    expect(countCpuList('3-1')).toBe(0);
    expect(onlineCpus()).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(!have)('nbdcopy opens as many connections as libnbd', () => {
  it.each([
    ['NBD -> null:, defaults', [], (u: Record<string, string>) => [u.src!, 'null:']],
    ['NBD -> NBD, defaults', [], (u: Record<string, string>) => [u.src!, u.dst!]],
    ['NBD -> NBD, -C 8', ['-C', '8'], (u: Record<string, string>) => [u.src!, u.dst!]],
    ['NBD -> NBD, -C 3 -T 4', ['-C', '3', '-T', '4'], (u: Record<string, string>) => [u.src!, u.dst!]],
    ['NBD -> NBD, -T 1', ['-T', '1'], (u: Record<string, string>) => [u.src!, u.dst!]],
    ['NBD -> NBD, --synchronous', ['--synchronous'], (u: Record<string, string>) => [u.src!, u.dst!]],
    ['NBD -> a new file', [], (u: Record<string, string>) => [u.src!, 'out.img']],
    ['a file -> NBD', [], (u: Record<string, string>) => [local, u.dst!]],
    ['NBD -> stdout (a pipe), -C 4 -T 4', ['-C', '4', '-T', '4'], (u: Record<string, string>) => [u.src!, '-']],
    ['NBD -> an NBD server without multi-conn', [], (u: Record<string, string>) => [u.src!, u.single!]],
  ])('%s', async (_name, flags, endpoints) => {
    const logs = {
      src: await logged('src', 'pattern', String(SIZE)),
      dst: await logged('dst', 'memory', String(SIZE)),
      single: await logged('single', '--filter=multi-conn', 'memory', String(SIZE), 'multi-conn-mode=disable'),
    };
    const theirs = counted(LIBNBD_NBDCOPY, (u) => [...flags, ...endpoints(u)], logs);
    fs.rmSync(path.join(dir, 'out.img'), { force: true });
    const ours = counted(OUR_NBDCOPY, (u) => [...flags, ...endpoints(u)], logs);
    fs.rmSync(path.join(dir, 'out.img'), { force: true });
    expect(theirs.src! + theirs.dst! + theirs.single!).toBeGreaterThan(0);
    expect(ours).toEqual(theirs);
  });

  it('-C 3 -T 4 opens 3 to each server, -T 1 one', async () => {
    const logs = { src: await logged('src', 'pattern', String(SIZE)), dst: await logged('dst', 'memory', String(SIZE)) };
    expect(counted(OUR_NBDCOPY, (u) => ['-C', '3', '-T', '4', u.src!, u.dst!], logs)).toEqual({ src: 3, dst: 3 });
    expect(counted(OUR_NBDCOPY, (u) => ['-T', '1', u.src!, u.dst!], logs)).toEqual({ src: 1, dst: 1 });
  });
});
