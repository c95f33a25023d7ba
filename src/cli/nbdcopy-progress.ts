// Progress reporting for nbdcopy: -p (a bar in a terminal, plain lines otherwise: see
// nbdcopy-progress-bar.ts, loaded only then) or libnbd's machine-readable "N/100\n" lines on
// a file descriptor (--progress=FD).
import fs from 'node:fs';
import { NbdError } from '../protocol/errors.js';
import type { ProgressSink } from './progress-sink.js';

export type { ProgressSink } from './progress-sink.js';


/**
 * Set by bin/nbdcopy's shell part: the --progress descriptors the caller had not opened. Node
 * opens descriptors of its own (about 3 to 17) before our code runs, so a descriptor the caller
 * never opened may well be open here, as one of Node's: only the shell could tell.
 */
const CLOSED_FDS_VARIABLE = 'NBD_TOOLKIT_CLOSED_FDS';

/** Reads (and removes, so no subprocess inherits it) what the launcher found closed. */
export function takeClosedFds(): ReadonlySet<number> {
  const listed = process.env[CLOSED_FDS_VARIABLE];
  if (listed === undefined) return new Set();
  delete process.env[CLOSED_FDS_VARIABLE];
  return new Set(listed.split(' ').filter((w) => w !== '').map(Number));
}

/**
 * --progress=FD must name a descriptor the caller opened: progress written to a closed one is
 * lost without a word, and one Node opened for itself would get our lines. Checked before any
 * connection is made. (libnbd 1.14's nbdcopy ignores the write errors and exits 0.)
 */
export function checkProgressFd(fd: number, closedAtStart: ReadonlySet<number>, option = '--progress'): void {
  let open = !closedAtStart.has(fd);
  if (open) {
    try {
      fs.fstatSync(fd);
    } catch {
      open = false;
    }
  }
  if (!open) throw new NbdError('EINVAL', `${option}=${fd}: file descriptor ${fd} is not open`);
}

const silent: ProgressSink = { update() {}, finish() {}, stop() {}, write: (text) => void process.stderr.write(text) };

export async function makeProgress(mode: false | 'bar' | { fd: number }, total: number | undefined): Promise<ProgressSink> {
  if (mode === false) return silent;
  if (mode === 'bar') return (await import('./nbdcopy-progress-bar.js')).makeBar(total);
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
    write: (text) => void process.stderr.write(text),
  };
}
