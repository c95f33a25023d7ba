// The load and abuse run of bench/server-load.mjs, short, on each writable backend: nbdserve
// as a subprocess (so its peak RSS is its own) serves 8 clients x 64 requests in flight of
// checked reads, writes, zeroes, trims, flushes and block status for 3 s, while a good client
// does round trips and the abusers arrive: 500 connections that never answer the greeting, a
// flooder that never reads its replies, a client sending thousands of options, and a 4 GiB
// WRITE header. The 60 s run with 64 clients and the 3x-of-idle latency figure are the bench's.
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../src/client/index.js';
import { SLOT, latencySummary, roundTrips, rssWatch, runLoad, openAbusers, droppedByServer, type AbuseReport } from '../bench/lib/server-load.mjs';
import { spawnNbdserve } from './helpers/embedded.js';
import { teardownAfterEach } from './helpers/teardown.js';

const cleanups = teardownAfterEach();
const CLIENTS = 8;
const DEPTH = 64;
const SECONDS = 3;
const HANDSHAKE_TIMEOUT_MS = 1000;
/** The load's slots, then one more for the good client. */
const DISK = (CLIENTS * DEPTH + 1) * SLOT;
const MiB = 2 ** 20;

async function server(backend: 'memory' | 'file') {
  let args = ['memory', String(DISK)];
  if (backend === 'file') {
    const file = join(cleanups.tempDir('server-load-'), 'disk.img');
    const fd = openSync(file, 'w');
    ftruncateSync(fd, DISK);
    closeSync(fd);
    args = ['file', file];
  }
  const s = await spawnNbdserve(['--handshake-timeout', `${HANDSHAKE_TIMEOUT_MS}ms`, ...args]);
  cleanups.push(() => s.stop());
  return s;
}

/** Polls the abusers' report until `done` holds or `ms` pass; returns the last report. */
async function reportWhen(abusers: { report(): AbuseReport }, done: (r: AbuseReport) => boolean, ms: number): Promise<AbuseReport> {
  const until = Date.now() + ms;
  let r = abusers.report();
  while (!done(r) && Date.now() < until) {
    await new Promise((res) => setTimeout(res, 50));
    r = abusers.report();
  }
  return r;
}

describe.each(['memory', 'file'] as const)('%s backend under load and abuse (short run)', (backend) => {
  it(`${CLIENTS} clients x ${DEPTH} in flight for ${SECONDS} s: every read as modelled, no error, no good connection dropped; the abusers dropped, the flooder held; RSS bounded`, async () => {
    const s = await server(backend);
    const rss = rssWatch(s.child.pid!);
    cleanups.push(() => rss.stop());
    const good = await connect(s.uri);
    cleanups.push(() => good.close());

    // The abusers go once the load's clients are in: a client still negotiating while this
    // process opens 500 sockets may miss this test's short handshake timeout.
    const abusers = await openAbusers(s.socket, { halfHandshakes: 500 });
    cleanups.push(() => abusers.stop());
    let trips: Promise<number[]> | undefined;
    const load = await runLoad({
      connect, uri: s.uri, clients: CLIENTS, depth: DEPTH, seconds: SECONDS,
      connected: () => {
        abusers.start();
        trips = roundTrips(good, Date.now() + SECONDS * 1000, DISK - SLOT);
      },
    });

    // The load: checked, and enough of it that the check means something.
    expect(load.first_error).toBeUndefined();
    expect(load.errors).toBe(0);
    expect(load.dropped_by_server).toEqual({ count: 0, reasons: [] });
    expect(load.total).toBeGreaterThan(300);
    for (const n of Object.values(load.requests)) expect(n).toBeGreaterThan(0);

    // The good client was served all along, and never waited long (generous: a shared machine).
    expect(droppedByServer(good)).toBe(false);
    const goodLatency = latencySummary(await trips!);
    expect(goodLatency.n).toBeGreaterThan(0);
    expect(goodLatency.max_ms).toBeLessThan(10_000);

    // The abusers that broke the rules are gone, by the server's hand, after the timeout (those
    // that never chose an export) or at once (the 4 GiB header); the flooder broke none: it is
    // held by flow control, still connected.
    const r = await reportWhen(abusers, (x) => x.half_handshake.dropped_by_server === 500 && x.options.dropped_by_server === 1, 10_000);
    expect(r.half_handshake.dropped_by_server).toBe(500);
    expect(r.half_handshake.how).toEqual({ EOF: 500 });
    expect(r.half_handshake.last_drop_ms).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
    expect(r.options.dropped_by_server).toBe(1);
    expect(r.options.options_sent).toBeGreaterThanOrEqual(5000);
    expect(r.options.last_drop_ms).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
    expect(r.write_4g.dropped_by_server).toBe(1);
    expect(r.flooder.dropped_by_server).toBe(0);
    expect(r.flooder.open).toBe(1);
    expect((await abusers.stop()).flooder.closed_by_us).toBe(1);

    // A disk of 32 MiB, 512 requests in flight, a flooder and 503 sockets: far below this.
    expect(rss.stop()).toBeLessThan(256 * MiB);
  });
});
