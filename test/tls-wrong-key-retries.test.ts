// A wrong TLS PSK key with retries: a server that rejects it with a TLS alert (ours, like any
// OpenSSL server: bad_record_mac, unknown_psk_identity) is not asked again, whether opening or
// reconnecting after a restart, so the caller gets one clear error at once instead of after
// every retry delay. nbdkit (GnuTLS) just closes the connection, with no alert: that cannot be
// told from a server going away at that moment, so it stays retried, as a restart is.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, MultiConn, NbdError, type RetryEvent } from '../src/index.js';
import { startServer, type RunningServer } from '../src/server/index.js';
import { requireBinaries } from './helpers/binaries.js';
import { ensureBuilt } from './helpers/build.js';
import { expectOneLine, nbdcopy } from './helpers/nbdcopy-process.js';
import { startNbdkit } from './helpers/servers.js';
import { teardownAfterEach } from './helpers/teardown.js';
import { makePskFile } from './helpers/tls-fixtures.js';

const have = requireBinaries('psktool');
const t = teardownAfterEach();

interface Keys { dir: string; good: string; wrong: string; other: string }

/** Two files with a key for alice each (not the same key), and one with a key for bob only. */
function keys(): Keys {
  const dir = t.tempDir('wrong-key-');
  return {
    dir,
    good: makePskFile(join(dir, 'good.psk'), 'alice').path,
    wrong: makePskFile(join(dir, 'wrong.psk'), 'alice').path,
    other: makePskFile(join(dir, 'bob.psk'), 'bob').path,
  };
}

async function ours(socket: string, psk: string, delayRead = 0): Promise<RunningServer> {
  const s = await startServer({
    backend: ['pattern', String(64 << 20)], unixSocket: socket, tls: { mode: 'require', pskFile: psk },
    faults: delayRead > 0 ? { delays: { read: delayRead } } : undefined,
  });
  t.push(() => s.close());
  return s;
}

const uriFor = (socket: string, user: string, psk: string) => `nbds+unix://${user}@/?socket=${socket}&tls-psk-file=${psk}`;

describe.skipIf(!have)('a PSK our server rejects with a TLS alert is not retried', () => {
  it('opening: connect(), MultiConn.open() and nbdcopy with retries=5 fail at once, in one clear line', async () => {
    const k = keys();
    const socket = join(k.dir, 'ours.sock');
    await ours(socket, k.good);
    const cases = [
      [uriFor(socket, 'alice', k.wrong), 'sslv3 alert bad record mac'],
      [uriFor(socket, 'bob', k.other), 'tlsv1 alert unknown psk identity'],
    ] as const;
    const delay = 5000;
    for (const [uri, alert] of cases) {
      const retried: RetryEvent[] = [];
      const options = { uriAllowLocalFile: true, retries: 5, retryDelayMs: delay, onRetry: (e: RetryEvent) => void retried.push(e) };
      const started = performance.now();
      const e = await connect(uri, options).then(() => undefined, (err: unknown) => err);
      expect(performance.now() - started).toBeLessThan(delay / 2);
      expect(e).toBeInstanceOf(NbdError);
      expect(e).toMatchObject({ code: 'EACCES', message: `TLS: PSK authentication failed (wrong key or unknown user name): ${alert}` });
      await expect(MultiConn.open(uri, { ...options, connections: 2 })).rejects.toMatchObject({ code: 'EACCES' });
      expect(retried).toEqual([]);
    }
    ensureBuilt();
    for (const [uri, alert] of cases) {
      const r = await nbdcopy(['--retries=5', '--retry-delay=10s', uri, 'null:']);
      expectOneLine(r, new RegExp(`^nbdcopy: .*: TLS: PSK authentication failed \\(wrong key or unknown user name\\): ${alert}$`));
      expect(r.ms).toBeLessThan(5000);
    }
  });

  it('reconnecting: a restart with the same key is retried and served; one with another key fails after one attempt', async () => {
    const k = keys();
    const socket = join(k.dir, 'ours.sock');
    let server = await ours(socket, k.good);
    const retried: RetryEvent[] = [];
    const c = await connect(uriFor(socket, 'alice', k.good), {
      uriAllowLocalFile: true, retries: 5, retryDelayMs: 300, onRetry: (e) => void retried.push(e),
    });
    t.clients.push(c);
    const word = Buffer.alloc(8);
    await c.pread(word, 4096);
    await server.close();
    server = await ours(socket, k.good);
    await c.pread(word, 8192);
    expect(word.readBigUInt64BE(0)).toBe(8192n);
    expect([c.reconnections, retried.map((e) => e.phase)]).toEqual([1, ['reconnect']]);

    await server.close();
    await ours(socket, k.wrong);
    const started = performance.now();
    const e = await c.pread(word, 0).then(() => undefined, (err: unknown) => err);
    // One pause before the one attempt; all five would take 300 + 600 + ... = 9.3 s.
    expect(performance.now() - started).toBeLessThan(2500);
    expect(retried).toHaveLength(2);
    expect(e).toMatchObject({ code: 'EACCES' });
    expect((e as Error).message).toMatch(/^TLS: PSK authentication failed \(wrong key or unknown user name\): sslv3 alert bad record mac \(on reconnecting after: /);
    // Later commands fail the same way at once.
    await expect(c.pread(word, 0)).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('nbdcopy --retries=5: the source restarted with another key mid-copy ends in one line, soon', async () => {
    const k = keys();
    const socket = join(k.dir, 'ours.sock');
    // Slow reads, few at a time: the copy is still running when the server goes.
    const first = await ours(socket, k.good, 100);
    ensureBuilt();
    const run = nbdcopy(['--connections=1', '--requests=4', '--retries=5', '--retry-delay=500ms', uriFor(socket, 'alice', k.good), 'null:']);
    for (const until = Date.now() + 20_000; first.connections === 0;) {
      if (Date.now() > until) throw new Error('nbdcopy never connected');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    await first.close();
    const restarted = performance.now();
    await ours(socket, k.wrong);
    const r = await run;
    // One 500 ms pause before the refused attempt; going through all five would take 15.5 s.
    expect(performance.now() - restarted).toBeLessThan(5000);
    expectOneLine(r, /^nbdcopy: nbds\+unix:.*: read at \d+: TLS: PSK authentication failed \(wrong key or unknown user name\): sslv3 alert bad record mac \(on reconnecting after: .*\)$/);
  });
});

describe.skipIf(!have || !requireBinaries('nbdkit'))('a PSK nbdkit rejects: a bare close, retried like a restart', () => {
  it('each attempt ends in the same close during the handshake, with no TLS alert', async () => {
    const k = keys();
    const kit = await startNbdkit(['--tls=require', `--tls-psk=${k.good}`, 'memory', '1M'], { dir: k.dir });
    t.push(() => kit.stop());
    const retried: RetryEvent[] = [];
    const e = await connect(uriFor(kit.socket, 'alice', k.wrong), {
      uriAllowLocalFile: true, retries: 2, retryDelayMs: 10, onRetry: (ev) => void retried.push(ev),
    }).then(() => undefined, (err: unknown) => err);
    expect(e).toMatchObject({
      code: 'ECONNRESET',
      message: 'TLS: server closed the connection during the handshake (wrong PSK key or unknown user name?) (gave up after 2 connection attempts)',
    });
    // Had an alert come, its OpenSSL code (ERR_SSL_...) would be the cause.
    const attempt = (e as NbdError).cause as NbdError;
    expect([attempt.code, attempt.cause]).toEqual(['ECONNRESET', undefined]);
    expect(retried.map((ev) => [ev.phase, ev.error.code])).toEqual([['open', 'ECONNRESET'], ['open', 'ECONNRESET']]);
  });
});
