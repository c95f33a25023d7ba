// The requests one connection owes an answer to: those on the wire, by cookie, and those
// waiting for one of the maxInFlight slots.
import { CMD_READ } from '../protocol/constants.js';
import type { Command } from './command.js';
import { MIN_DIRECT_READ } from './reply-reader.js';

function isBigRead(cmd: Command): boolean {
  return cmd.type === CMD_READ && cmd.length >= MIN_DIRECT_READ;
}

export class PendingRequests {
  private readonly sent = new Map<number, Command>();
  /** READs of MIN_DIRECT_READ bytes or more among `sent` (see ReplySink.bigReadsPending). */
  private bigReads = 0;
  /** Waiting for a slot, from waitingHead on. */
  private waiting: Command[] = [];
  private waitingHead = 0;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly maxInFlight: number) {}

  /** Requests on the wire: sent, not yet answered. */
  get onWire(): number {
    return this.sent.size;
  }

  /** On the wire plus waiting for a slot. */
  get total(): number {
    return this.sent.size + this.waiting.length - this.waitingHead;
  }

  get bigReadsPending(): boolean {
    return this.bigReads > 0;
  }

  hasSlot(): boolean {
    return this.sent.size < this.maxInFlight;
  }

  wait(cmd: Command): void {
    this.waiting.push(cmd);
  }

  /** The first request waiting for a slot, taken out of the queue. */
  nextWaiting(): Command | undefined {
    if (this.waitingHead === this.waiting.length) return undefined;
    const next = this.waiting[this.waitingHead]!;
    this.waiting[this.waitingHead++] = undefined as unknown as Command;
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
    return next;
  }

  /** `cmd` has its cookie and leaves now: its reply can arrive from here on. */
  track(cmd: Command): void {
    this.sent.set(cmd.cookie, cmd);
    if (isBigRead(cmd)) this.bigReads++;
  }

  find(cookie: number): Command | undefined {
    return this.sent.get(cookie);
  }

  /** `cmd` was answered (or failed before it left). */
  forget(cmd: Command): void {
    this.sent.delete(cmd.cookie);
    if (isBigRead(cmd)) this.bigReads--;
  }

  /** Resolves once nothing is on the wire (at once if nothing is). */
  drained(): Promise<void> {
    if (this.sent.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  /** Wakes drained() callers if nothing is on the wire any more. */
  checkDrained(): void {
    if (this.sent.size > 0 || this.drainWaiters.length === 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Rejects every request, sent or waiting, with `err`, and wakes drained() callers. */
  failAll(err: Error): void {
    for (const cmd of this.sent.values()) cmd.reject(err);
    this.sent.clear();
    this.bigReads = 0;
    for (let i = this.waitingHead; i < this.waiting.length; i++) this.waiting[i]!.reject(err);
    this.waiting = [];
    this.waitingHead = 0;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
