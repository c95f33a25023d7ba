// What nbdcopy's progress displays (bar, plain lines, libnbd's FD format) offer the copy.

export interface ProgressSink {
  /** Called often (per finished request): must be cheap. */
  update(done: number): void;
  finish(): void;
  /** Ends the display; `failed`: an error line follows, so a bar is wiped, not kept. */
  stop(failed?: boolean): void;
}
