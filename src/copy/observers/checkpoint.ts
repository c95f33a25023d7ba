// Observer for --checkpoint: records the ranges that are done in the checkpoint file as the
// copy goes, often enough that a crash loses little, and removes the file after success.
// The ranges a resumed copy still has to do come from the same file (see `remaining`).
import type { CopyObserver, CopyStart } from '../observer.js';
import type { Endpoint } from '../endpoint.js';
import { DoneRanges } from '../done-ranges.js';
import type { RangeSource } from '../range-source.js';
import { removeCheckpoint, writeCheckpoint, type CopyIdentity } from '../checkpoint-journal.js';

/** Save at least this often while the copy makes progress. */
const SAVE_INTERVAL_MS = 2000;

export interface CheckpointOptions {
  /** Save once this many new bytes are done (one queue of in-flight work keeps the loss small). */
  saveEvery: number;
  /**
   * Flush the destination before each save and make the save itself durable (fsync), so
   * what the file lists survives a power cut too. Without it, it survives nbdcopy dying.
   */
  flush: boolean;
  log?: (line: string) => void;
}

export class CheckpointObserver implements CopyObserver {
  private readonly completed: DoneRanges;
  /** Bytes done before this run (listed in the file it started from). */
  readonly resumedBytes: number;
  private unsaved = 0;
  private saving: Promise<void> | undefined;
  private saveError: unknown;
  private timer: NodeJS.Timeout | undefined;
  private destination: Endpoint | undefined;
  private saves = 0;

  constructor(
    private readonly file: string,
    private identity: CopyIdentity,
    previous: DoneRanges,
    private readonly options: CheckpointOptions,
  ) {
    this.completed = new DoneRanges(previous.ranges());
    this.resumedBytes = previous.bytes;
  }

  /** The ranges still to copy: what the file did not list when this run started. */
  remaining(): RangeSource {
    const before = new DoneRanges(this.completed.ranges());
    return { name: 'checkpoint', ranges: (offset, length) => before.missing(offset, length) };
  }

  /** The destination's size is only known once it is open. */
  setIdentity(identity: CopyIdentity): void {
    this.identity = identity;
  }

  async start(copy: CopyStart): Promise<void> {
    this.destination = copy.destination;
    // Written at once: a run killed before its first save still leaves a file to resume from.
    await this.save();
    this.timer = setInterval(() => {
      if (this.unsaved > 0) this.saveSoon();
    }, SAVE_INTERVAL_MS);
    this.timer.unref();
  }

  done(offset: number, length: number): void {
    if (this.saveError !== undefined) throw this.saveError;
    this.completed.add(offset, length);
    this.unsaved += length;
    if (this.unsaved >= this.options.saveEvery) this.saveSoon();
  }

  async end(): Promise<void> {
    await this.settle();
    if (this.saveError !== undefined) throw this.saveError;
    await removeCheckpoint(this.file);
    this.options.log?.(`checkpoint: done, ${this.file} removed (${this.saves} saves; `
      + `this run copied ${this.completed.bytes - this.resumedBytes} bytes, ${this.resumedBytes} were done before)`);
  }

  /** After a failure: one last save of what is done, so the next run redoes as little as possible. */
  async abandon(): Promise<void> {
    await this.settle();
    if (this.unsaved > 0 && this.saveError === undefined) await this.save().catch(() => undefined);
    this.options.log?.(`checkpoint: ${this.completed.bytes} bytes done are recorded in ${this.file}`);
  }

  /** No more saves start on their own; the one under way (and any it chains) finishes. */
  private async settle(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    while (this.saving !== undefined) await this.saving;
  }

  private saveSoon(): void {
    if (this.saving !== undefined || this.saveError !== undefined) return;
    this.saving = this.save()
      .catch((err: unknown) => {
        this.saveError = err;
      })
      .finally(() => {
        this.saving = undefined;
        // More completed while saving: save again without waiting for the next trigger.
        if (this.unsaved >= this.options.saveEvery) this.saveSoon();
      });
  }

  private async save(): Promise<void> {
    // Only ranges done before the flush are known to be on the destination after it.
    const ranges = this.completed.ranges();
    this.unsaved = 0;
    if (this.options.flush) await this.destination?.flush();
    await writeCheckpoint(this.file, { identity: this.identity, done: ranges }, this.options.flush);
    this.saves++;
  }
}
