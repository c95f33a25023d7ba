// nbdcopy --progress-json[=FD]: one JSON object per line for programs. While copying, at most
// one "progress" event a second; at the end one "done" summary, or an "error" event. In a
// batch each event also names its line of the batch file.
import fs from 'node:fs';
import type { CopyObserver } from '../copy/observer.js';
import { RateMeter, eta } from './progress-format.js';

/** What the "done" event reports beyond bytes read (which the reporter counts itself). */
export interface CopySummary {
  /** Bytes of the source covered. */
  bytes: number;
  written: number;
  zeroed: number;
  skipped: number;
  connections: number;
  retries: number;
  /** --rate, bytes per second; null without one. */
  rateLimit: number | null;
  /** --blkhash's digest (hex) when one was asked for. */
  blkhash?: string | null;
}

export class JsonProgress {
  private done = 0;
  private read = 0;
  private total: number | undefined;
  private lastAt: number;
  private readonly started: number;
  private readonly meter = new RateMeter();

  /**
   * `tags`: fields every event carries (a batch's line number, the two sides). `write`, when
   * given, takes each line instead of `fd` (a progress bar on the same stderr places them).
   */
  constructor(
    private readonly fd: number,
    private readonly tags: Record<string, unknown> = {},
    private readonly now: () => number = () => performance.now(),
    private readonly write?: (line: string) => void,
  ) {
    this.started = now();
    this.lastAt = this.started;
    this.meter.sample(this.started, 0);
  }

  /** Counts what is read and done, and reports now and then. */
  observer(): CopyObserver {
    return {
      start: ({ size }) => {
        this.total = size;
      },
      beforeRead: (_offset, length) => {
        this.read += length;
      },
      done: (_offset, length) => {
        this.done += length;
        const t = this.now();
        if (t - this.lastAt >= 1000) {
          this.lastAt = t;
          this.progress(t);
        }
      },
    };
  }

  private progress(t: number): void {
    const rate = this.meter.sample(t, this.done);
    const left = eta({ done: this.done, total: this.total, rate });
    this.emit({
      event: 'progress', bytes: this.done, total: this.total ?? null, rate: Math.round(rate),
      eta: left === undefined ? null : Math.round(left * 10) / 10,
    });
  }

  /** The copy succeeded. */
  finish(summary: CopySummary): void {
    this.emit({
      event: 'done',
      bytes: summary.bytes,
      bytes_read: this.read,
      bytes_written: summary.written,
      bytes_zeroed: summary.zeroed,
      bytes_skipped: summary.skipped,
      seconds: this.seconds(),
      connections: summary.connections,
      retries: summary.retries,
      rate_limit: summary.rateLimit,
      blkhash: summary.blkhash ?? null,
      status: 0,
    });
  }

  /** The copy failed with `message` (the line also printed on stderr, without the prefix). */
  error(message: string, retries: number, status = 1): void {
    this.emit({ event: 'error', message, bytes: this.done, seconds: this.seconds(), retries, status });
  }

  private seconds(): number {
    return Math.round(this.now() - this.started) / 1000;
  }

  private emit(event: Record<string, unknown>): void {
    // A reader that went away must not break the copy.
    try {
      const line = `${JSON.stringify({ ...event, ...this.tags })}\n`;
      if (this.write !== undefined) this.write(line);
      else fs.writeSync(this.fd, line);
    } catch {
      /* ignore */
    }
  }
}
