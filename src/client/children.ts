// Subprocesses started for a connection (nbdkit -s ..., socket activation) die with their
// handle: on close, and on process exit if the caller forgot, so no server is ever orphaned.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAllOnExit(): void {
  for (const child of live) {
    try {
      child.kill('SIGTERM');
    } catch {
      // already gone
    }
  }
}

export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killAllOnExit);
  }
}

/**
 * Stops and reaps every subprocess still running: what a CLI does before it ends by a signal,
 * when no 'exit' hook will run.
 */
export function stopAllChildren(graceMs = 2000): Promise<void> {
  return Promise.all([...live].map((child) => stopChild(child, graceMs))).then(() => undefined);
}

/** Sends SIGTERM, then SIGKILL after `graceMs`, and resolves once the child is reaped. */
export function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    timer.unref();
    child.once('exit', () => {
      clearTimeout(timer);
      live.delete(child);
      // A piped stderr may still hold the server's last lines after it exited: its reader gets
      // them before we return (bounded: a process the server left behind may keep it open).
      const err = child.stderr;
      if (err === null || err.readableEnded || err.destroyed) {
        resolve();
        return;
      }
      const drained = setTimeout(resolve, 500);
      drained.unref();
      err.once('close', () => {
        clearTimeout(drained);
        resolve();
      });
    });
    child.kill('SIGTERM');
  });
}
