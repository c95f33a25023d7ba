// Differential tests: our bin/nbdinfo against libnbd 1.14's /usr/bin/nbdinfo on the same
// servers, same arguments. Output bytes and exit codes must be equal; the few places where
// they may not be are listed with the reason next to them.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool, type Outcome } from './helpers/run-tool.js';
import { canConnectUnix } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { REPO, ensureBuilt } from './helpers/build.js';

const OURS = join(REPO, 'bin', 'nbdinfo');
const THEIRS = '/usr/bin/nbdinfo';
const have = requireBinaries(THEIRS, '/usr/bin/nbdkit', '/usr/bin/qemu-nbd', '/usr/bin/qemu-img', '/usr/bin/qemu-io');
const maybe = have ? describe : describe.skip;

async function both(args: string[]): Promise<{ ours: Outcome; theirs: Outcome }> {
  const [ours, theirs] = await Promise.all([runTool(OURS, args), runTool(THEIRS, args)]);
  return { ours, theirs };
}

let dir = '';
const children: ChildProcess[] = [];

/** Waits until the server accepts connections (its socket file exists a moment before it listens). */
async function waitForPath(path: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before listening on ${path}`);
    if (await canConnectUnix(path)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts a server on a private Unix socket; returns its nbd+unix URI. */
async function startServer(name: string, argv: (sock: string) => string[]): Promise<string> {
  const sock = join(dir, `${name}.sock`);
  const [cmd, ...args] = argv(sock);
  const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  await waitForPath(sock, child);
  return `nbd+unix:///?socket=${sock}`;
}

const nbdkit = (...args: string[]) => (sock: string) => ['nbdkit', '-f', '-U', sock, ...args];

function withExport(uri: string, name: string): string {
  return uri.replace(':///', `:///${encodeURIComponent(name)}`);
}

const SERVERS: Record<string, string> = {};

maybe('nbdinfo vs libnbd nbdinfo', () => {
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'nbdinfo-diff-'));
    const qcow = join(dir, 'top.qcow2');
    const base = join(dir, 'base.qcow2');
    const sh = (cmd: string, ...args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    };
    sh('qemu-img', 'create', '-q', '-f', 'qcow2', base, '4M');
    sh('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x11 0 64k', base);
    sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', qcow);
    sh('qemu-img', 'bitmap', '--add', qcow, 'bm0');
    sh('qemu-io', '-f', 'qcow2', '-c', 'write -P 0x22 1M 128k', '-c', 'write -z 2M 64k', qcow);
    // 100M with data across the 32M and 64M marks: qemu-nbd states a 32M maximum, so the map
    // is walked in several windows whose edges fall inside these extents.
    const big = join(dir, 'big.qcow2');
    sh('qemu-img', 'create', '-q', '-f', 'qcow2', big, '100M');
    sh('qemu-io', '-f', 'qcow2', '-c', 'write -P 1 31M 2M', '-c', 'write -P 2 63M 3M', '-c', 'write -z 80M 1M', big);

    const started = await Promise.all([
      startServer('memory', nbdkit('memory', '1M')),
      startServer('data', nbdkit('data', '"hello world" @1048576 1 @3145727 2')),
      startServer('null0', nbdkit('null', '0')),
      startServer('pattern', nbdkit('-r', 'pattern', '5G')),
      startServer('oldstyle', nbdkit('-o', 'memory', '100000')),
      startServer('nosr', nbdkit('--no-sr', 'memory', '1M')),
      startServer('exports', nbdkit(
        '--filter=exportname', 'memory', '1M', 'exportname-list=explicit', 'exportname-strict=true',
        'exportname=a', 'exportname=b"q\\x', 'exportname=c\u0001d', 'exportname=é☃ /x:y',
        'exportdesc=fixed:some "desc"', 'default-export=a',
      )),
      startServer('qemu', (sock) => ['qemu-nbd', '-t', '-e', '16', '-k', sock, '-f', 'qcow2', '-A', '-B', 'bm0', qcow]),
      startServer('bigqemu', (sock) => ['qemu-nbd', '-t', '-e', '16', '-k', sock, '-f', 'qcow2', '-A', join(dir, 'big.qcow2')]),
      startServer('sparse', nbdkit('sparse-random', '1G', 'seed=42', 'runlength=65536')),
      // Our embedded server: the only one here that speaks extended headers.
      startServer('ours', (sock) => [process.execPath, join(REPO, 'bin', 'nbdserve'), '-f', '-U', sock, 'memory', '1G']),
    ]);
    const names = ['memory', 'data', 'null0', 'pattern', 'oldstyle', 'nosr', 'exports', 'qemu', 'bigqemu', 'sparse', 'ours'];
    names.forEach((n, i) => (SERVERS[n] = started[i]!));
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs checks a few at a time: the tools are CPU-bound at start-up and we have two cores. */
  async function inParallel(checks: Array<() => Promise<unknown>>, width = 4): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < checks.length) await checks[next++]!();
    };
    await Promise.all(Array.from({ length: width }, worker));
  }

  /** Same stdout, same exit code; stderr must be one line when it fails. */
  async function expectSame(args: string[]): Promise<Outcome> {
    const { ours, theirs } = await both(args);
    expect(ours.stdout, `stdout of nbdinfo ${args.join(' ')}`).toBe(theirs.stdout);
    expect(ours.code, `exit code of nbdinfo ${args.join(' ')}\n${ours.stderr}`).toBe(theirs.code);
    if (ours.code !== 0 && ours.code !== 2) expect(ours.stderr.trimEnd().split('\n')).toHaveLength(1);
    return ours;
  }

  const SHOW_MODES = [[], ['--json'], ['--size'], ['--size', '--json'], ['--list'], ['--list', '--json'], ['--no-content'], ['--list', '--content']];
  const MAP_MODES = [['--map'], ['--map', '--json'], ['--map', '--totals'], ['--map', '--totals', '--json']];
  const CAN = ['connect', 'read', 'write', 'flush', 'fua', 'trim', 'zero', 'fast-zero', 'df', 'multi-conn', 'cache', 'structured-reply'];
  const IS = ['read-only', 'rotational', 'tls'];

  // Every mode and every --can on two servers (read-write and read-only); the others get the
  // modes whose output depends on the server. JSON output already compares every flag.
  const FULL = new Set(['memory', 'pattern']);
  const SHORT_SHOW = [[], ['--json'], ['--size'], ['--list', '--json']];
  const SHORT_CAN = ['write', 'trim', 'structured-reply'];

  for (const server of ['memory', 'data', 'null0', 'pattern', 'nosr', 'qemu']) {
    const full = FULL.has(server);
    it(`${server}: text, JSON, size, list`, async () => {
      await inParallel((full ? SHOW_MODES : SHORT_SHOW).map((mode) => () => expectSame([...mode, SERVERS[server]!])));
      const json = JSON.parse((await runTool(OURS, ['--json', SERVERS[server]!])).stdout);
      expect(json.exports).toHaveLength(1);
    });

    it(`${server}: map and totals`, async () => {
      await inParallel(MAP_MODES.map((mode) => () => expectSame([...mode, SERVERS[server]!])));
    });

    it(`${server}: --can / --is exit codes`, async () => {
      await inParallel([
        ...(full ? CAN : SHORT_CAN).map((c) => () => expectSame(['--can', c, SERVERS[server]!])),
        ...(full ? IS : ['read-only']).map((c) => () => expectSame(['--is', c, SERVERS[server]!])),
      ]);
    });
  }

  it('qemu-nbd: allocation depth and dirty bitmap maps, colours', async () => {
    const checks: Array<() => Promise<unknown>> = [];
    for (const ctx of ['qemu:allocation-depth', 'qemu:dirty-bitmap:bm0', 'base:allocation']) {
      for (const extra of [[], ['--json'], ['--totals'], ['--totals', '--json'], ['--color'], ['--totals', '--color']]) {
        checks.push(() => expectSame([`--map=${ctx}`, ...extra, SERVERS.qemu!]));
      }
    }
    checks.push(() => expectSame(['--color', SERVERS.qemu!]));
    checks.push(() => expectSame(['--map=qemu:dirty-bitmap:nope', SERVERS.qemu!]));
    // Other spellings libnbd accepts for --can / --is, any case.
    for (const c of ['MULTICONN', 'sr', 'Fast_Zero']) checks.push(() => expectSame(['--can', c, SERVERS.qemu!]));
    checks.push(() => expectSame(['--is', 'readonly', SERVERS.qemu!]));
    await inParallel(checks);
  });

  it('maps walked in several requests: qemu-nbd 100M (32M maximum), sparse-random 1G', async () => {
    const checks: Array<() => Promise<unknown>> = [];
    for (const mode of MAP_MODES) {
      checks.push(() => expectSame([...mode, SERVERS.bigqemu!]));
      checks.push(() => expectSame([...mode.map((m) => (m === '--map' ? '--map=qemu:allocation-depth' : m)), SERVERS.bigqemu!]));
      checks.push(() => expectSame([...mode, SERVERS.sparse!]));
    }
    checks.push(() => expectSame([SERVERS.bigqemu!]));
    checks.push(() => expectSame(['--json', SERVERS.sparse!]));
    await inParallel(checks);
    const map = JSON.parse((await runTool(OURS, ['--map', '--json', SERVERS.sparse!])).stdout) as unknown[];
    expect(map.length).toBeGreaterThan(100);
  });

  it('--can names newer than libnbd 1.14: answered by us, unknown to it', async () => {
    // libnbd 1.14 predates extended headers and block status payloads, so it rejects these
    // names (exit 1). nbdkit 1.32 and qemu-nbd 7.2 support neither, so the answer is "no" (2).
    for (const name of ['extended-headers', 'eh', 'block-status-payload']) {
      for (const server of ['memory', 'qemu']) {
        const { ours, theirs } = await both(['--can', name, SERVERS[server]!]);
        expect(theirs.code).toBe(1);
        expect(theirs.stderr).toMatch(/unknown --can or --is option/);
        expect(ours).toEqual({ stdout: '', stderr: '', code: 2 });
      }
    }
  });

  it('our embedded server: same output as libnbd, and extended headers answered', async () => {
    // libnbd 1.14 does not speak extended headers, so it talks structured replies to our
    // server while we negotiate extended headers; the printed facts must still be the same.
    await inParallel([[], ['--json'], ['--map', '--json'], ['--list'], ['--size']].map((mode) => () => expectSame([...mode, SERVERS.ours!])));
    expect((await runTool(OURS, ['--can', 'extended-headers', SERVERS.ours!])).code).toBe(0);
  });

  it('oldstyle: everything but --list matches', async () => {
    await inParallel([
      ...[[], ['--json'], ['--size'], ['--no-content'], ...MAP_MODES].map((mode) => () => expectSame([...mode, SERVERS.oldstyle!])),
      ...SHORT_CAN.map((c) => () => expectSame(['--can', c, SERVERS.oldstyle!])),
    ]);
    // libnbd fails with its internal state name ("nbd_opt_list: invalid state: READY ...");
    // we say why in our words. Both exit 1 with nothing on stdout.
    const { ours, theirs } = await both(['--list', SERVERS.oldstyle!]);
    expect([ours.code, ours.stdout]).toEqual([theirs.code, theirs.stdout]);
    expect(ours.stderr).toMatch(/^nbdinfo: .*list.*\n$/);
  });

  it('exportname filter: several exports with odd names and descriptions', async () => {
    const uri = SERVERS.exports!;
    const modes = [['--list'], ['--list', '--json'], ['--list', '--content'], ['--list', '--json', '--content']];
    await inParallel(modes.map((mode) => () => expectSame([...mode, uri])));
    const listed = JSON.parse((await runTool(OURS, ['--list', '--json', uri])).stdout);
    expect(listed.exports.map((e: { 'export-name': string }) => e['export-name'])).toEqual(['a', 'b"q\\x', 'c\u0001d', 'é☃ /x:y']);
    const checks: Array<() => Promise<unknown>> = [];
    for (const name of ['a', 'b"q\\x', 'é☃ /x:y']) {
      for (const mode of [[], ['--json'], ['--size'], ['--map']]) checks.push(() => expectSame([...mode, withExport(uri, name)]));
    }
    await inParallel(checks);
  });

  it('unknown export: exit 1 and one line (libnbd also prints a partial report on stdout)', async () => {
    const uri = withExport(SERVERS.exports!, 'nope');
    for (const mode of [['--size'], ['--map'], ['--can', 'connect']]) {
      const { ours, theirs } = await both([...mode, uri]);
      expect([ours.code, ours.stdout]).toEqual([theirs.code, theirs.stdout]);
      expect(ours.stderr).toMatch(/^nbdinfo: .*nope.*\n$/);
    }
    // Default mode: libnbd prints "protocol: ..." to stdout, then two lines on stderr.
    // Ours keeps stdout empty on failure (the output is all-or-nothing) and says it in one line.
    const { ours, theirs } = await both([uri]);
    expect(theirs.code).toBe(1);
    expect(ours.code).toBe(1);
    expect(ours.stdout).toBe('');
    expect(ours.stderr).toMatch(/^nbdinfo: .*nope.*--list.*\n$/);
  });

  it('subprocess: [ nbdkit ... ] through socket activation', async () => {
    const modes = [[], ['--json'], ['--size'], ['--map'], ['--list'], ['--can', 'trim']];
    await inParallel(modes.map((mode) => () => expectSame([...mode, '--', '[', 'nbdkit', 'data', '1 @65536 2', 'size=1M', ']'])));
    await expectSame(['--is', 'read-only', '--', '[', 'nbdkit', '-r', 'null', '1M', ']']);
  });
});
