// nbdcopy -p: in a terminal, a bar redrawn in place (cli-progress) with percent, bytes, rate
// and time left, fitted to the width on every redraw and drawn again at once on a resize,
// wiped before an error line or a server's stderr; when stderr is not a terminal, plain lines
// instead (never \r frames), at most one a second and only when the percent moved, and one at
// the end.
import { barLine, plainLine, RateMeter, percent, type ProgressState } from './progress-format.js';
import { LineBuffer, type ProgressSink } from './progress-sink.js';
import { trackProgress } from './progress-tracker.js';

export interface BarOptions {
  stream?: NodeJS.WriteStream;
  /** Plain lines only: words after `nbdcopy: ` naming what is copied (a batch line). */
  label?: string;
  /** Milliseconds, for tests. */
  now?: () => number;
}

export async function makeBar(total: number | undefined, options: BarOptions = {}): Promise<ProgressSink> {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => performance.now());
  return stream.isTTY ? makeTerminalBar(total, stream, now) : makePlainLines(total, stream, now, options.label ?? '');
}

async function makeTerminalBar(total: number | undefined, stream: NodeJS.WriteStream, now: () => number): Promise<ProgressSink> {
  const { default: cliProgress } = await import('cli-progress');
  const progress = trackProgress(total, now);
  const { state } = progress;
  const bar = new cliProgress.SingleBar({
    stream,
    // Drawn by us at the width of the moment: cli-progress only places it and redraws it.
    format: () => barLine(state, stream.columns || 80),
    hideCursor: false,
    clearOnComplete: true,
    linewrap: false,
    fps: 5,
    // A line wiped for other text must come back even if the bar did not change.
    forceRedraw: true,
  });
  bar.start(total ?? 1, 0);
  const redraw = (): void => bar.render();
  stream.on('resize', redraw);
  // Other text goes on the bar's line, wiped first; the bar is drawn again on the next line.
  const others = new LineBuffer((lines) => {
    stream.write(`\r\x1b[2K${lines}`);
    if (!stopped) redraw();
  });
  let stopped = false;
  return {
    update: progress.update,
    finish: progress.finish,
    stop(failed = false) {
      if (stopped) return;
      stopped = true;
      progress.stop();
      stream.off('resize', redraw);
      progress.measureNow();
      // cli-progress wipes the line on stop (clearOnComplete): after a failure that is all,
      // so the error line starts on a clean line; after success the last state stays.
      bar.stop();
      others.flush();
      if (!failed) stream.write(`${barLine(state, stream.columns || 80)}\n`);
    },
    write(text) {
      if (stopped) stream.write(text);
      else others.push(text);
    },
  };
}

function makePlainLines(total: number | undefined, stream: NodeJS.WriteStream, now: () => number, label: string): ProgressSink {
  const meter = new RateMeter();
  const state: ProgressState = { done: 0, total, rate: 0 };
  let lastAt = now();
  let lastPercent = -1;
  meter.sample(lastAt, 0);
  const write = () => {
    stream.write(`nbdcopy: ${label}${plainLine(state)}\n`);
    lastPercent = percent(state);
  };
  // Our lines and another writer's partial lines must not share a line.
  const others = new LineBuffer((lines) => stream.write(lines));
  return {
    update(done) {
      state.done = done;
      const t = now();
      if (t - lastAt < 1000) return;
      state.rate = meter.sample(t, done);
      if (total !== undefined && percent(state) === lastPercent) return;
      lastAt = t;
      write();
    },
    finish() {
      if (total !== undefined) state.done = total;
      state.rate = meter.sample(now(), state.done);
      write();
    },
    stop() {
      others.flush();
    },
    write(text) {
      others.push(text);
    },
  };
}
