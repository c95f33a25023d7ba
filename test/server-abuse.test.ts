// The server against clients that do not play along: handshakes never finished (dropped at the
// handshake timeout, also when they keep sending options, and not read further while they
// leave the replies unread), more connections than --max-connections (closed on arrival, the
// slot reused once one leaves), a 4 GiB WRITE header (dropped), a client that floods requests
// and never reads (held by flow control) — while a good client keeps being served. And the two
// options' bad values on the command line.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import {
  CMD_READ, CMD_WRITE, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, OPT_LIST, buildOption, encodeRequest, requestSize,
} from '../src/protocol/index.js';
import { MemoryBackend } from '../src/server/index.js';
import { NBDSERVE, ensureBuilt } from './helpers/build.js';
import { RawNbd, embeddedStarter } from './helpers/embedded.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const serve = embeddedStarter(cleanups);

async function raw(path: string): Promise<RawNbd> {
  const r = await RawNbd.connect(path);
  cleanups.push(() => r.destroy());
  return r;
}

describe('handshake timeout and connection limit', () => {
  it('a client that stops after the greeting, and one that sends options for ever, are dropped at the timeout', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20), handshakeTimeoutMs: 400 });
    const idle = await raw(s.socket);
    await idle.greet();
    const chatty = await raw(s.socket);
    await chatty.greet();
    let answered = 0;
    const started = Date.now();
    // Thousands of options, each answered, none choosing an export.
    const talk = (async () => {
      for (let i = 0; i < 5000; i++) {
        try {
          await chatty.option(OPT_LIST);
        } catch {
          return;
        }
        answered++;
      }
    })();
    expect(await idle.closedByPeer(5000)).toBe(true);
    expect(await chatty.closedByPeer(5000)).toBe(true);
    await talk;
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(5000);
    // A client that does negotiate in time is served and not cut afterwards.
    const c = await connect(s.uri);
    cleanups.push(() => c.close());
    await new Promise((r) => setTimeout(r, 600));
    await c.pread(Buffer.alloc(512), 0);
  });

  it('a client that sends options and never reads the replies is not read further once 64 KiB of replies wait, and is dropped at the timeout', async () => {
    let handled = 0;
    const s = await serve({
      backend: new MemoryBackend(1 << 20), handshakeTimeoutMs: 4000,
      log: (m) => { if (m.startsWith('option NBD_OPT_LIST')) handled++; },
    });
    const sock = net.connect(s.socket);
    cleanups.push(() => sock.destroy());
    sock.pause();
    sock.on('error', () => {});
    // A socket that reads nothing sees the drop through its pending write (EPIPE).
    const closed = new Promise<number>((r) => sock.on('close', () => r(Date.now())));
    await new Promise((r) => sock.once('connect', r));
    const started = Date.now();
    // 400,000 OPT_LIST (6.4 MB) in one write: replies of some 44 bytes each would be 17.6 MB.
    sock.write(Buffer.concat([Buffer.from([0, 0, 0, FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES]), ...Array<Buffer>(400_000).fill(buildOption(OPT_LIST))]));
    const closedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 20_000))]);
    expect(closedAt - started).toBeGreaterThanOrEqual(3500);
    expect(closedAt).toBeLessThan(Infinity);
    // Until the drop, what the socket buffers hold and 64 KiB more, then nothing (the options
    // the server took in wait unread: Node reads up to 2 MiB per wake-up, so not a fixed figure).
    expect(handled).toBeGreaterThan(100);
    expect(handled).toBeLessThan(20_000);
  });

  it('--max-connections: one too many is closed at once, and its slot is free again once one leaves', async () => {
    const s = await serve({ backend: new MemoryBackend(1 << 20), maxConnections: 3, handshakeTimeoutMs: 0 });
    const held = [await raw(s.socket), await raw(s.socket), await raw(s.socket)];
    for (const h of held) await h.greet();
    const extra = await raw(s.socket);
    expect(await extra.closedByPeer(3000)).toBe(true);
    held[0]!.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const c = await connect(s.uri);
    cleanups.push(() => c.close());
    await c.pread(Buffer.alloc(512), 0);
  });
});

describe('abusers beside a good client', () => {
  it('a 4 GiB WRITE header is dropped, a flooder that never reads is held, the good client is served', async () => {
    const s = await serve({ backend: new MemoryBackend(64 << 20) });
    const good = await connect(s.uri);
    cleanups.push(() => good.close());

    const huge = await raw(s.socket);
    await huge.negotiate({ extended: true });
    huge.sendRequest(CMD_WRITE, 0, 1, 0, 0xffff_ffff + 1);
    expect(await huge.closedByPeer(5000)).toBe(true);

    // 20,000 READs of 64 KiB written in one go, replies never read.
    const flood = await raw(s.socket);
    await flood.negotiate({});
    flood.socket.pause();
    const size = requestSize(false);
    const burst = Buffer.alloc(size * 20_000);
    for (let i = 0; i < 20_000; i++) encodeRequest(burst, i * size, { type: CMD_READ, flags: 0, cookie: i, offset: 0, length: 65536 }, false);
    flood.socket.write(burst);

    const buf = Buffer.alloc(65536);
    const started = Date.now();
    for (let i = 0; i < 50; i++) await good.pread(buf, i * 65536);
    await good.pwrite(Buffer.alloc(4096, 1), 0);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(s.connections).toBe(2);
  });
});

describe('nbdserve --max-connections / --handshake-timeout values', () => {
  ensureBuilt();
  for (const [flag, value] of [['--max-connections', 'many'], ['--max-connections', '-1'], ['--handshake-timeout', 'soon'], ['--handshake-timeout', '2d']]) {
    it(`${flag} ${value}: one line, exit 1`, () => {
      const r = run(NBDSERVE, [flag!, value!, 'memory', '1M'], { timeout: 20_000 });
      expect(r.status).toBe(1);
      expect(hasExactlyOneErrorLine(r.stderr, 'nbdserve')).toBe(true);
      expect(r.stderr).toContain(flag!);
    });
  }
});
