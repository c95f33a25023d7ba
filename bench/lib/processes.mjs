// Every process the bench starts goes through here, so that an error, a timeout or ^C
// can reap all of them: servers, measured tools and counting readers. Each child gets
// its own process group (GNU time ignores SIGINT while it waits, and a tool may have
// children of its own), and we signal the whole group. Children are started by execa, whose
// results name the command line (a tool that cannot start says which one and why).

import { execa } from 'execa';

const live = new Set();

/**
 * Spawn a tracked child. Returns the subprocess (a ChildProcess) and a promise of
 * { code, signal } — with `error` (its message names the command) when it could not start.
 */
export function spawnTracked(command, args, options = {}) {
  // detached: a group of its own. buffer: false: callers read the pipes they asked for.
  // reject: false: an exit status is a figure to report, not an exception.
  const child = execa(command, args, { ...options, detached: true, buffer: false, reject: false, stripFinalNewline: false });
  const entry = { child, exited: false };
  live.add(entry);
  const done = child.then((result) => {
    entry.exited = true;
    live.delete(entry);
    const started = result.exitCode !== undefined || result.signal !== undefined;
    return started
      ? { code: result.exitCode ?? null, signal: result.signal ?? null }
      : { code: null, signal: null, error: new Error(result.shortMessage) };
  });
  return { child, done };
}

function signalGroup(child, signal) {
  if (child.pid == null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone: nothing to reap.
  }
}

/** Ask a child's group to stop, then force it; resolves once it has exited. */
export async function stopChild(handle, graceMs = 2000) {
  signalGroup(handle.child, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(handle.child, 'SIGKILL'), graceMs);
  await handle.done;
  clearTimeout(timer);
  // The leader may be gone while members of its group linger (a tool's own helpers).
  signalGroup(handle.child, 'SIGKILL');
}

/** Synchronous last resort for process exit paths: no waiting is possible there. */
export function killAllNow() {
  for (const entry of live) signalGroup(entry.child, 'SIGKILL');
}

let cleanups = [];

/** Register synchronous cleanup (temp dirs) to run on ^C, SIGTERM and normal exit. */
export function onCleanup(fn) {
  cleanups.push(fn);
  return () => {
    cleanups = cleanups.filter((other) => other !== fn);
  };
}

function runCleanups() {
  killAllNow();
  const pending = cleanups;
  cleanups = [];
  for (const fn of pending.reverse()) {
    try {
      fn();
    } catch {
      // Cleanup must not mask the reason we are exiting.
    }
  }
}

let installed = false;

export function installSignalHandlers() {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping servers and removing temp files\n`);
      runCleanups();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
  process.on('exit', runCleanups);
}
