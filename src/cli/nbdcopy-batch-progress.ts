// nbdcopy --batch -p: the progress of every copy that runs. In a terminal, one bar a running
// copy (cli-progress MultiBar), each labelled with its batch line and fitted to the width,
// with summaries, errors and servers' stderr written above the bars; otherwise plain lines,
// labelled, at most one a second per copy.
import { barLine } from './progress-format.js';
import { makeBar } from './nbdcopy-progress-bar.js';
import { LineBuffer, type ProgressSink } from './progress-sink.js';
import { trackProgress } from './progress-tracker.js';

export interface BatchProgress {
  /** The display of the copy of batch line `line`, once its size is known. */
  copy(line: number, total: number | undefined): Promise<ProgressSink>;
  /** A whole line for stderr (a summary, an error) that must not garble the bars. */
  say(line: string): void;
  /** Ends the display: no bar is left behind. */
  stop(): void;
}

export async function makeBatchProgress(stream: NodeJS.WriteStream = process.stderr): Promise<BatchProgress> {
  if (!stream.isTTY) {
    return {
      copy: (line, total) => makeBar(total, { stream, label: `batch line ${line}: ` }),
      say: (line) => void stream.write(`${line}\n`),
      stop() {},
    };
  }
  const { default: cliProgress } = await import('cli-progress');
  type Draw = (columns: number) => string;
  const options = {
    stream,
    // Each bar's payload draws it at the width of the moment.
    format: (_options: unknown, _params: unknown, payload: { draw: Draw }) => payload.draw(stream.columns || 80),
    hideCursor: false,
    clearOnComplete: true,
    linewrap: false,
    fps: 5,
    forceRedraw: true,
  };
  // One MultiBar while copies run, ended (its bars wiped) whenever none runs: cli-progress
  // keeps a blank line after a removed bar, which the next line written without it would need.
  let multi: InstanceType<typeof cliProgress.MultiBar> | undefined;
  let running = 0;
  const say = (text: string): void => {
    if (multi !== undefined) multi.log(text);
    else stream.write(text);
  };
  const end = (): void => {
    if (multi === undefined) return;
    // Lines logged since the last frame come out first; then the bars are wiped.
    multi.update();
    multi.stop();
    multi = undefined;
  };
  return {
    async copy(line, total) {
      const label = `line ${line}: `;
      const progress = trackProgress(total);
      const { state } = progress;
      const draw: Draw = (columns) => {
        const room = columns - label.length;
        return room > 8 ? `${label}${barLine(state, room)}` : barLine(state, columns);
      };
      multi ??= new cliProgress.MultiBar(options);
      const owner = multi;
      const bar = owner.create(total ?? 1, 0, { draw });
      running++;
      const others = new LineBuffer(say);
      let stopped = false;
      return {
        update: progress.update,
        finish: progress.finish,
        stop() {
          if (stopped) return;
          stopped = true;
          progress.stop();
          others.flush();
          running--;
          if (running === 0) end();
          else owner.remove(bar);
        },
        write: (text) => others.push(text),
      };
    },
    say: (line) => say(`${line}\n`),
    stop: end,
  };
}
