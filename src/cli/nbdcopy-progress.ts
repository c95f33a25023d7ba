// Progress reporting for nbdcopy: a bar on stderr (-p, cli-progress loaded only then) or
// nbdcopy's machine-readable "N/100\n" lines on a file descriptor (--progress=FD).
import fs from 'node:fs';

export interface ProgressSink {
  /** Called often (per finished request): must be cheap. */
  update(done: number): void;
  finish(): void;
  stop(): void;
}

const silent: ProgressSink = { update() {}, finish() {}, stop() {} };

export async function makeProgress(mode: false | 'bar' | { fd: number }, total: number | undefined): Promise<ProgressSink> {
  if (mode === false) return silent;
  if (mode === 'bar') return makeBar(total);
  return makeFdProgress(mode.fd, total);
}

function makeFdProgress(fd: number, total: number | undefined): ProgressSink {
  let last = -1;
  const emit = (pct: number) => {
    if (pct === last) return;
    last = pct;
    // A closed or broken progress fd must not break the copy.
    try {
      fs.writeSync(fd, `${pct}/100\n`);
    } catch {
      /* ignore */
    }
  };
  emit(0);
  return {
    update(done) {
      if (total === undefined || total === 0) return;
      emit(Math.min(100, Math.floor((done * 100) / total)));
    },
    finish() {
      emit(100);
    },
    stop() {},
  };
}

async function makeBar(total: number | undefined): Promise<ProgressSink> {
  const { default: cliProgress } = await import('cli-progress');
  const MiB = 1024 * 1024;
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: total === undefined ? ' {value} MiB copied' : ' [{bar}] {percentage}% | {value}/{total} MiB',
    hideCursor: false,
    clearOnComplete: false,
    fps: 10,
    // Not a terminal (a log file, CI): still report, one line now and then.
    noTTYOutput: true,
    notTTYSchedule: 1000,
  }, cliProgress.Presets.shades_classic);
  const totalMiB = total === undefined ? 0 : Math.ceil(total / MiB);
  bar.start(totalMiB, 0);
  let lastMiB = -1;
  let stopped = false;
  return {
    update(done) {
      const v = Math.floor(done / MiB);
      if (v !== lastMiB) {
        lastMiB = v;
        bar.update(v);
      }
    },
    finish() {
      if (total !== undefined) bar.update(totalMiB);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
