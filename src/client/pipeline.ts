// The transmission phase's two halves, built when the handshake ends: the ReplyReader and
// the RequestWriter of one connection, wired to its pending-request table.
import type { Duplex } from 'node:stream';
import type { ClientOptions } from './client-options.js';
import type { Command } from './command.js';
import type { ConnectionLog } from './logger.js';
import type { Negotiator } from './negotiate.js';
import type { PendingRequests } from './pending-requests.js';
import { ReplyReader } from './reply-reader.js';
import { RequestWriter } from './request-writer.js';
import type { StatsCounter } from './stats.js';

/** What the reader and writer call back into: the connection's coordinator. */
export interface PipelineOwner {
  readonly pending: PendingRequests;
  readonly counters: StatsCounter;
  readonly log: ConnectionLog;
  finish(cmd: Command): void;
  fail(err: unknown): void;
}

/**
 * `rawSocket`: the stream is a plain socket the client opened, nothing layered on it, so
 * raw sends and direct reads are safe.
 */
export function buildPipeline(
  neg: Negotiator, stream: Duplex, rawSocket: boolean, opts: ClientOptions, owner: PipelineOwner,
): { reader: ReplyReader; writer: RequestWriter } {
  const { pending, counters, log } = owner;
  const reader = new ReplyReader(
    {
      find: (cookie) => pending.find(cookie),
      finish: (cmd) => owner.finish(cmd),
      bigReadsPending: () => pending.bigReadsPending,
    },
    { structured: neg.structuredReplies, extended: neg.extendedHeaders, contexts: neg.contexts },
    counters,
    log,
  );
  const writer = new RequestWriter(
    stream,
    {
      track: (cmd) => pending.track(cmd),
      pending: () => pending.onWire,
      finish: (cmd) => owner.finish(cmd),
      fail: (err) => owner.fail(err),
    },
    { extended: neg.extendedHeaders, rawSocket, batch: Math.max(1, opts.requestBatch ?? 1) },
    counters,
    log,
  );
  return { reader, writer };
}
