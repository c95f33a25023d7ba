// What nbdcopy's progress displays (bar, plain lines, libnbd's FD format) offer the copy, and
// the line buffer that keeps other writers' text (a server's stderr) in whole lines.

export interface ProgressSink {
  /** Called often (per finished request): must be cheap. */
  update(done: number): void;
  finish(): void;
  /** Ends the display; `failed`: an error line follows, so a bar is wiped, not kept. */
  stop(failed?: boolean): void;
  /**
   * Writes text from elsewhere on stderr (a `[ CMD ]` server's) so that it does not garble the
   * display: a bar is wiped first and drawn again below it. Whole lines only; a partial last
   * line waits for its end (or for stop()).
   */
  write(text: string): void;
}

/** Collects text and hands on only whole lines (what is left comes out with flush()). */
export class LineBuffer {
  private partial = '';

  constructor(private readonly out: (lines: string) => void) {}

  push(text: string): void {
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      this.partial += text;
      return;
    }
    const lines = this.partial + text.slice(0, end + 1);
    this.partial = text.slice(end + 1);
    this.out(lines);
  }

  flush(): void {
    if (this.partial === '') return;
    const rest = `${this.partial}\n`;
    this.partial = '';
    this.out(rest);
  }
}
