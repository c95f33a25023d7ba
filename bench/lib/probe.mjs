// Which tools can race on this machine. A tool is in when its program exists and passes a
// smoke run against a tiny server; otherwise it is skipped with the reason, and the rest of
// the bench still runs.

import { accessSync, constants } from 'node:fs';
import { versionOf } from './machine.mjs';
import { runMeasured } from './measure.mjs';
import { startServer } from './servers.mjs';
import { buildCommand, programs } from './tools.mjs';

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns { [toolId]: { copy: Status, info: Status } } with
 * Status = { program, available, version, note }.
 */
export async function probeTools({ toolIds, repoRoot, serverKind, tmpDir }) {
  const paths = programs(repoRoot);
  const server = await startServer({
    kind: serverKind,
    spec: { backend: 'pattern', size: 2 ** 20 },
    tmpDir,
    name: 'smoke',
    repoRoot,
  });
  const status = {};
  try {
    for (const toolId of toolIds) {
      status[toolId] = {};
      for (const job of ['copy', 'info']) {
        const program = paths[toolId][job];
        const entry = { program, available: false, version: null, note: null };
        status[toolId][job] = entry;
        if (!executable(program)) {
          entry.note = `${program} not found`;
          continue;
        }
        entry.version = versionOf(program);
        const command = buildCommand(toolId, {
          program,
          src: { kind: 'nbd', uri: server.uri },
          dst: { kind: job === 'info' ? 'info' : 'null' },
          size: 2 ** 20,
        });
        const run = await runMeasured({ argv: command.argv, tmpDir, stdout: 'ignore', timeoutMs: 30000 });
        if (run.ok) entry.available = true;
        else entry.note = `smoke check failed: ${run.error}`;
      }
    }
  } finally {
    await server.stop();
  }
  return status;
}
