// Runs one scenario: start its servers, prepare its input, then alternate the tools run
// by run (A B C A B C ...) so drift of the machine hits every tool alike, and always
// stop the servers and delete the data.

import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { runMeasured } from './measure.mjs';
import { processesCpuMs } from './proc-cpu.mjs';
import { scenarioRatios, startupFigures } from './results.mjs';
import { scenarioSize } from './scenarios.mjs';
import { startServer } from './servers.mjs';
import { summarizeRuns } from './stats.mjs';
import { buildCommand, jobOf } from './tools.mjs';

/** A local source file of dense random data (incompressible, no zero runs to skip). */
function writeRandomFile(path, size) {
  const chunk = Buffer.allocUnsafe(4 * 2 ** 20);
  const fd = openSync(path, 'w');
  try {
    for (let offset = 0; offset < size; offset += chunk.length) {
      const length = Math.min(chunk.length, size - offset);
      randomFillSync(chunk, 0, length);
      writeSync(fd, chunk, 0, length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Node's own start-up as our launchers see it: they drop NODE_EXTRA_CA_CERTS when no TLS is
 * asked for (reading the CA bundle costs tens of milliseconds), so the floor drops it too.
 */
export const NODE_FLOOR_ARGV = [process.execPath, '-e', '0'];
export const NODE_FLOOR_ENV = { NODE_EXTRA_CA_CERTS: undefined };

function serverSpec(end, size) {
  return { backend: end.backend, size, delayReadMs: end.delayReadMs, delayWriteMs: end.delayWriteMs, rateBits: end.rateBits, threads: end.threads };
}

/** Anything a run leaves behind goes before the next run; sync so writeback does not leak into it. */
function cleanOutput(path) {
  if (!path) return;
  rmSync(path, { force: true });
  spawnSync('sync');
}

/** A run that exited 0 but did not produce the bytes it should have is a failure. */
function checkOutput(run, dst, size) {
  if (!run.ok) return run;
  if (dst.kind === 'stdout' && run.stdoutBytes !== size) {
    return { ...run, ok: false, error: `wrote ${run.stdoutBytes} bytes to stdout, expected ${size}` };
  }
  if (dst.kind === 'file') {
    let actual = -1;
    try {
      actual = statSync(dst.path).size;
    } catch {
      // Missing output: reported below.
    }
    if (actual !== size) return { ...run, ok: false, error: `output file has ${actual} bytes, expected ${size}` };
  }
  return run;
}

export async function runScenario({ scenario, options, toolStatus, serverKind, tmpRoot, repoRoot, log }) {
  const size = scenarioSize(scenario, options.quick);
  const dir = mkdtempSync(join(tmpRoot, `${scenario.name}-`));
  const servers = [];
  const job = jobOf(scenario);
  const timeoutMs = options.quick ? 120_000 : 600_000;
  try {
    let src;
    if (scenario.source.type === 'nbd') {
      const server = await startServer({ kind: serverKind, spec: serverSpec(scenario.source, size), tmpDir: dir, name: 'src', repoRoot });
      servers.push(server);
      src = { kind: 'nbd', uri: server.uri };
    } else {
      const path = join(dir, 'source.img');
      writeRandomFile(path, size);
      src = { kind: 'file', path };
    }
    let dst;
    switch (scenario.destination.type) {
      case 'nbd': {
        const server = await startServer({ kind: serverKind, spec: serverSpec(scenario.destination, size), tmpDir: dir, name: 'dst', repoRoot });
        servers.push(server);
        dst = { kind: 'nbd', uri: server.uri };
        break;
      }
      case 'file':
        dst = { kind: 'file', path: join(dir, 'output.img') };
        break;
      default:
        dst = { kind: scenario.destination.type };
    }

    const rows = [];
    for (const toolId of options.tools) {
      const status = toolStatus[toolId]?.[job];
      if (!status?.available) {
        rows.push({ tool: toolId, program: status?.program ?? null, skipped: status?.note ?? 'not probed' });
        continue;
      }
      const command = buildCommand(toolId, { program: status.program, src, dst, size, nbdcopyArgs: scenario.nbdcopyArgs });
      if (command.skip) rows.push({ tool: toolId, program: status.program, skipped: command.skip });
      else rows.push({ tool: toolId, program: status.program, command: command.argv, stdout: command.stdout, runs: [] });
    }

    const active = rows.filter((row) => !row.skipped);
    const serverPids = servers.map((server) => server.pid);
    const measure = async (row) => {
      const serverBefore = processesCpuMs(serverPids);
      const run = await runMeasured({ argv: row.command, tmpDir: dir, stdout: row.stdout, timeoutMs });
      const serverAfter = processesCpuMs(serverPids);
      run.serverCpuMs = serverBefore != null && serverAfter != null ? serverAfter - serverBefore : null;
      const checked = checkOutput(run, dst, size);
      cleanOutput(dst.kind === 'file' ? dst.path : null);
      return checked;
    };

    if (options.warmup) {
      for (const row of active) {
        const run = await measure(row);
        if (!run.ok) row.note = `warm-up failed: ${run.error}`;
      }
    }
    const runs = options.runs * (scenario.runsFactor ?? 1);
    // A start-up-bound row is judged as ours minus Node's own start-up: measure that floor in
    // the same rounds, so it sees the same machine.
    const floorRuns = [];
    for (let index = 0; index < runs; index += 1) {
      if (scenario.startupBound && active.some((row) => row.tool === 'ours')) floorRuns.push(await runMeasured({ argv: NODE_FLOOR_ARGV, env: NODE_FLOOR_ENV, tmpDir: dir, timeoutMs }));
      for (const row of active) {
        // One failure is enough to know a tool cannot do this scenario; do not wait for it again.
        if (row.runs.some((run) => !run.ok) || row.note) continue;
        const run = await measure(row);
        row.runs.push(run);
        if (!run.ok) row.note = run.error;
        log?.(`  ${scenario.name} ${row.tool} run ${index + 1}/${runs}: ${run.ok ? `${(run.wallMs / 1000).toFixed(3)} s` : `FAILED: ${run.error}`}`);
      }
    }
    for (const row of active) {
      row.summary = summarizeRuns(row.runs, job === 'info' ? 0 : size);
      delete row.stdout;
    }
    const nodeFloor = floorRuns.length > 0 ? summarizeRuns(floorRuns, 0) : undefined;
    return {
      name: scenario.name,
      title: scenario.title,
      kind: job,
      bytes: size,
      server: { kind: serverKind, commands: servers.map((server) => server.command) },
      rows,
      ratios: scenarioRatios(rows),
      ...(nodeFloor ? { nodeFloor, startup: startupFigures(rows, nodeFloor) } : {}),
    };
  } finally {
    for (const server of servers) await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
