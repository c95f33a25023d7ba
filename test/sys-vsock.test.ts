// AF_VSOCK as far as these machines allow: they have no vsock loopback transport (CID 1 does
// not answer), so no NBD session runs over vsock here. What is checked: the sockaddr_vm bytes,
// nbd+vsock URIs reaching the socket layer (and its one-line error), the nbd backend's
// vhost-cid=, and nbdserve --vsock listening (a second one on the same port is refused).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { encodeSockaddrVm } from '../src/sys/vsock.js';
import { runTool } from './helpers/run-tool.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { NBDSERVE, REPO, ensureBuilt } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';

const cleanups = teardownAfterEach();
/** A CID no machine here has a transport to: the kernel answers ENODEV at once. */
const NO_SUCH_CID = 3;

describe('AF_VSOCK', () => {
  it('sockaddr_vm: family 40, reserved, port and CID in host order, 16 bytes', () => {
    expect(encodeSockaddrVm(2, 10809).toString('hex')).toBe('2800' + '0000' + '392a0000' + '02000000' + '00000000');
    expect(encodeSockaddrVm(0xffff_ffff, 0xffff_fffe).toString('hex')).toBe('28000000feffffffffffffff00000000');
    expect(() => encodeSockaddrVm(-1, 1)).toThrow(/invalid CID/);
    expect(() => encodeSockaddrVm(1, 2 ** 32)).toThrow(/invalid port/);
  });

  it('the client connects nbd+vsock URIs through the socket layer: a CID without transport is one clear error', async () => {
    const err = await connect(`nbd+vsock://${NO_SUCH_CID}:10809/`).then(() => undefined, (e: Error) => e);
    expect(err?.message).toBe(`connect to vsock CID ${NO_SUCH_CID} port 10809: No such device (no AF_VSOCK transport for it on this machine)`);
    const target = await connect({ vsock: { cid: NO_SUCH_CID } }).then(() => undefined, (e: Error) => e);
    expect(target?.message).toMatch(/^connect to vsock CID 3 port 10809: No such device/);
    // Ports are 32 bits for vsock (16 for TCP).
    const big = await connect(`nbd+vsock://${NO_SUCH_CID}:4000000000/`).then(() => undefined, (e: Error) => e);
    expect(big?.message).toMatch(/port 4000000000: No such device/);
  });

  it('bin/nbdinfo and nbdserve nbd vhost-cid= say it in one line and exit 1', async () => {
    ensureBuilt();
    const info = await runTool(join(REPO, 'bin', 'nbdinfo'), [`nbd+vsock://${NO_SUCH_CID}/`]);
    expect(info.code).toBe(1);
    expect(info.stderr).toBe(`nbdinfo: connect to vsock CID ${NO_SUCH_CID} port 10809: No such device (no AF_VSOCK transport for it on this machine)\n`);
    const proxy = await runTool(process.execPath, [
      NBDSERVE, '-U', join(makeTempDir('vsock-'), 's'), 'nbd', `vhost-cid=${NO_SUCH_CID}`, 'port=10809', 'shared=true',
    ]);
    expect(proxy.code).toBe(1);
    expect(proxy.stderr).toMatch(/^nbdserve: error: nbd: cannot connect to the upstream server: connect to vsock CID 3 port 10809: No such device[^\n]*\n$/);
  });

  it('nbdserve --vsock -p PORT listens on AF_VSOCK; a second server on the port gets one line and exit 1', async () => {
    ensureBuilt();
    const port = 20000 + Math.floor(Math.random() * 40000);
    const first = spawn(process.execPath, [NBDSERVE, '--vsock', '-p', String(port), '-v', 'memory', '1M'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    first.stderr!.on('data', (c: Buffer) => { log += c.toString(); });
    cleanups.push(() => new Promise<void>((resolve) => {
      if (first.exitCode !== null) return resolve();
      first.once('exit', () => resolve());
      first.kill('SIGTERM');
    }));
    for (const until = Date.now() + 15_000; !log.includes('serving'); ) {
      if (first.exitCode !== null || Date.now() > until) throw new Error(`nbdserve --vsock did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(log).toContain(`at nbd+vsock://1:${port}/`);
    const second = await runTool(process.execPath, [NBDSERVE, '--vsock', '-p', String(port), 'memory', '1M']);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(`nbdserve: error: cannot listen: listen on vsock port ${port}: Address already in use\n`);
    const bad = await runTool(process.execPath, [NBDSERVE, '--vsock', '-s', 'memory', '1M']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('nbdserve: usage: --vsock cannot be combined with -s or -U\n');
  });
});
