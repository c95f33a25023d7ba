// `[ CMD ]` servers end as libnbd ends them: SIGTERM as soon as the handle closes, then reaped
// (no waiting for a server to leave by itself), and a command that never serves is reported in
// one line that names the command and why, never our private socket path.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { connect } from '../src/client/index.js';
import type { ConnectTarget } from '../src/client/transport.js';
import { runTool } from './helpers/run-tool.js';
import { processReaped } from './helpers/servers.js';
import { REPO } from './helpers/build.js';
import { requireBinary } from './helpers/binaries.js';

const haveNbdkit = requireBinary('nbdkit');

afterEach(() => {
  vi.useRealTimers();
});

function childPids(word: string): number[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(word)).map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe.skipIf(!haveNbdkit)('closing a subprocess server', () => {
  // With timers frozen, a close that waits on a timer for the server to exit by itself never
  // ends (the test times out); one that signals at once ends when the server is reaped.
  const targets: Array<[string, ConnectTarget]> = [
    ['socket activation', { activation: ['nbdkit', 'memory', '1M'] }],
    ['command on a socketpair', { command: ['nbdkit', '-s', 'memory', '1M'] }],
  ];
  it.each(targets)('%s: SIGTERM at once, no timer, then reaped', async (_name, target) => {
    const c = await connect(target);
    const [pid] = childPids('nbdkit');
    expect(pid).toBeDefined();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    await c.close();
    vi.useRealTimers();
    expect(processReaped(pid!)).toBe(true);
  }, 10_000);
});

const NBDINFO = join(REPO, 'bin', 'nbdinfo');
const NBDCOPY = join(REPO, 'bin', 'nbdcopy');

describe('a [ CMD ] that does not start', () => {
  it.each([
    [NBDINFO, ['--', '[', '/nonexistent/cmd', ']'], 'nbdinfo: /nonexistent/cmd: command not found'],
    [NBDINFO, ['--', '[', 'no-such-command-here', 'x', ']'], 'nbdinfo: no-such-command-here: command not found'],
    [NBDINFO, ['--size', '--', '[', 'sh', '-c', 'exit 3', ']'], 'nbdinfo: sh: exited with status 3 before serving'],
    [NBDINFO, ['--', '[', 'sh', '-c', 'kill -KILL $$', ']'], 'nbdinfo: sh: killed by SIGKILL before serving'],
    [NBDCOPY, ['--', '[', '/nonexistent/cmd', ']', 'null:'], 'nbdcopy: /nonexistent/cmd: command not found'],
  ])('%s %j', async (bin, args, line) => {
    const r = await runTool(bin, args);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${line}\n`);
  });
});
