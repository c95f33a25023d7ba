// child_process.spawn, with node:child_process loaded on the first call: most runs connect to
// a socket and never start a server, and loading the module is part of every start-up.
import type * as ChildProcesses from 'node:child_process';

export const spawn: typeof ChildProcesses.spawn = ((...args: Parameters<typeof ChildProcesses.spawn>) =>
  process.getBuiltinModule('node:child_process').spawn(...args)) as typeof ChildProcesses.spawn;
