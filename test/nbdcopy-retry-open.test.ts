// nbdcopy --retries when a connection cannot be opened yet (a server that starts late, one
// that hangs up during the handshake, one that never comes), and with a TLS-PSK source that is
// killed and started again mid-copy: the destination equals the source, or one line and exit 1.
import fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyThroughCrashes, opsSuite } from './helpers/ops-suite.js';
import { requireBinaries } from './helpers/binaries.js';
import {
  RestartableServer, startHangUpProxy,
} from './helpers/restartable-server.js';
import { makePskFile } from './helpers/tls-fixtures.js';
import { errorLines, expectOneLine, nbdcopy } from './helpers/nbdcopy-process.js';

const have = requireBinaries('nbdkit', 'psktool');
const MiB = 1 << 20;

const suite = opsSuite('nbdcopy-retry-open-');
const { servers, proxies } = suite;

const same = (a: string, b: string) => fs.readFileSync(a).equals(fs.readFileSync(b));

/** nbdkit serving a copy of the source (or `file`) on its own socket, not started yet. */
function fileServer(name: string, extra: string[] = [], file = join(suite.dir, `${name}.img`)): RestartableServer {
  if (!fs.existsSync(file)) fs.copyFileSync(suite.src, file);
  const server = new RestartableServer(join(suite.dir, `${name}.sock`), [...extra, '--filter=delay', 'file', file, 'delay-read=10ms']);
  servers.push(server);
  return server;
}

describe.skipIf(!have)('--retries while opening', () => {
  it('a source that starts after two failed attempts: the copy waits for it and is exact', async () => {
    const server = fileServer('late-src');
    const out = join(suite.dir, 'late-src.out');
    const copying = nbdcopy(['-v', '--retries=6', '--retry-delay=100ms', server.uri, out]);
    await copying.stderrShows(/connecting again in 200 ms \(attempt 2 of 6\)/);
    await server.start();
    const r = await copying;
    expect(errorLines(r)).toEqual([]);
    expect(r.status).toBe(0);
    expect(same(out, suite.src)).toBe(true);
  });

  it('a destination that starts late: the file behind it equals the source', async () => {
    const target = join(suite.dir, 'late-dst.img');
    fs.writeFileSync(target, Buffer.alloc(8 * MiB));
    const server = fileServer('late-dst', [], target);
    const copying = nbdcopy(['-v', '--retries=6', '--retry-delay=100ms', suite.src, server.uri]);
    await copying.stderrShows(/connecting again in 100 ms/);
    await server.start();
    const r = await copying;
    expect(errorLines(r)).toEqual([]);
    expect(r.status).toBe(0);
    expect(same(target, suite.src)).toBe(true);
  });

  it('a server that hangs up on the first 3 connections (a restart during the handshake)', async () => {
    const server = fileServer('door');
    await server.start();
    const door = join(suite.dir, 'door-proxy.sock');
    const proxy = await startHangUpProxy(server.socket, door, 3);
    proxies.push(proxy);
    const out = join(suite.dir, 'door.out');
    const r = await nbdcopy(['--retries=4', '--retry-delay=20ms', `nbd+unix:///?socket=${door}`, out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(proxy.hungUp).toBe(3);
    expect(same(out, suite.src)).toBe(true);
  });

  it('without --retries a server not there yet fails at once: one line, exit 1, nothing written', async () => {
    const server = fileServer('absent');
    const out = join(suite.dir, 'absent.out');
    const r = await nbdcopy([server.uri, out]);
    expectOneLine(r, /^nbdcopy: .*absent\.sock.*(No such file|refused)/i);
    expect(r.ms).toBeLessThan(5000);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('--retries=2 and a server that never comes: one line naming the attempts, exit 1', async () => {
    const server = fileServer('never');
    const out = join(suite.dir, 'never.out');
    const r = await nbdcopy(['--retries=2', '--retry-delay=10ms', server.uri, out]);
    expectOneLine(r, /^nbdcopy: .*never\.sock.*\(gave up after 2 connection attempts\)$/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe.skipIf(!have)('--retries with a TLS source', () => {
  for (const seed of [1, 2]) {
    it(`nbdkit --tls=require (PSK) killed and restarted twice mid-copy (seed ${seed}): the copy is exact`, async () => {
      const psk = join(suite.dir, `keys${seed}.psk`);
      makePskFile(psk, 'alice');
      const server = fileServer(`tls${seed}`, ['--tls=require', `--tls-psk=${psk}`]);
      await server.start();
      const uri = `nbds+unix://alice@/?socket=${server.socket}&tls-psk-file=${psk}`;
      await copyThroughCrashes(server, uri, join(suite.dir, `tls${seed}.out`), suite.src, 2, seed);
      expect(server.restarts).toBe(2);
    });
  }
});
