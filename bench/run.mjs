#!/usr/bin/env node
// npm run bench: race our nbdcopy/nbdinfo against libnbd's and qemu-img, side by side in
// one run on the same servers. See bench/README.md.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, USAGE } from './lib/args.mjs';
import { compareResults, formatComparison } from './lib/baseline.mjs';
import { formatRate, formatRatio, formatRss, formatSeconds } from './lib/format.mjs';
import { describeMachine, gitDescribe, versionOf } from './lib/machine.mjs';
import { renderMarkdown } from './lib/markdown.mjs';
import { GNU_TIME, haveGnuTime, runMeasured } from './lib/measure.mjs';
import { summarizeRuns } from './lib/stats.mjs';
import { probeTools } from './lib/probe.mjs';
import { installSignalHandlers, onCleanup } from './lib/processes.mjs';
import { scenarioRatios } from './lib/results.mjs';
import { NODE_FLOOR_ARGV, NODE_FLOOR_ENV, runScenario } from './lib/runner.mjs';
import { SCENARIOS, scenarioSize, selectScenarios } from './lib/scenarios.mjs';
import { chooseServerKind, NBDKIT } from './lib/servers.mjs';
import { formatBytes } from './lib/sizes.mjs';
import { renderSvg } from './lib/svg.mjs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (line) => process.stderr.write(`${line}\n`);

function listScenarios() {
  for (const scenario of SCENARIOS) {
    const sizes = `${formatBytes(scenarioSize(scenario, false))} (quick ${formatBytes(scenarioSize(scenario, true))})`;
    process.stdout.write(`${scenario.name.padEnd(16)} ${scenario.title}; ${sizes}\n`);
  }
}

function printScenario(result) {
  log(`${result.name}: ${result.title}, ${formatBytes(result.bytes)}, server ${result.server.kind}`);
  if (result.error) log(`  FAILED to set up: ${result.error}`);
  for (const row of result.rows) {
    if (row.skipped) {
      log(`  ${row.tool.padEnd(9)} skipped: ${row.skipped}`);
      continue;
    }
    const s = row.summary;
    if (s.runs === 0) {
      log(`  ${row.tool.padEnd(9)} FAILED: ${row.note}`);
      continue;
    }
    const r = result.ratios[row.tool];
    const rel = r ? `  ours/this ${formatRatio(r.wall)}` : '';
    log(
      `  ${row.tool.padEnd(9)} median ${formatSeconds(s.medianWallMs)} (min ${formatSeconds(s.minWallMs)}, max ${formatSeconds(s.maxWallMs)})` +
        `  cpu ${formatSeconds(s.medianCpuMs)}  server cpu ${formatSeconds(s.medianServerCpuMs)}  rss ${formatRss(s.maxRssKb)}` +
        (result.kind === 'info' ? '' : `  ${formatRate(s.bytesPerSecond)}`) +
        rel +
        (s.failed > 0 ? `  [${s.failed} failed: ${row.note}]` : ''),
    );
  }
  const st = result.startup;
  if (st) {
    log(
      `  start-up-bound: ours - node -e 0 = ${formatSeconds(st.oursMinusNodeMs)} (node ${formatSeconds(st.nodeMs)})` +
        (st.libnbdMs == null ? '' : ` vs libnbd ${formatSeconds(st.libnbdMs)}: ${formatRatio(st.ratio)}`),
    );
  }
}

async function measureNodeStartup(tmpDir) {
  const runs = [];
  for (let index = 0; index < 5; index += 1) {
    runs.push(await runMeasured({ argv: NODE_FLOOR_ARGV, env: NODE_FLOOR_ENV, tmpDir, timeoutMs: 30000 }));
  }
  return summarizeRuns(runs, 0);
}

async function runBench(options) {
  const scenarios = selectScenarios(options.scenarios);
  // --ours DIR races another build (a snapshot, another checkout) instead of this one.
  const oursRoot = options.ours ? resolve(options.ours) : repoRoot;
  const serverKind = chooseServerKind(options.server, oursRoot);
  const tmpRoot = mkdtempSync(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'nbd-bench-'));
  const dropCleanup = onCleanup(() => rmSync(tmpRoot, { recursive: true, force: true }));
  if (!haveGnuTime()) log(`bench: ${GNU_TIME} not found (Debian package "time"): CPU and peak RSS are not measured`);
  log(`bench: ${options.quick ? 'quick' : 'full'} sizes, ${options.runs} runs per tool, server ${serverKind}, temp ${tmpRoot}`);

  const startedAt = new Date().toISOString();
  const loadAtStart = loadavg();
  try {
    const toolStatus = await probeTools({ toolIds: options.tools, repoRoot: oursRoot, serverKind, tmpDir: tmpRoot });
    for (const [toolId, jobs] of Object.entries(toolStatus)) {
      for (const [job, status] of Object.entries(jobs)) {
        log(`bench: ${toolId} ${job}: ${status.available ? `${status.program} (${status.version ?? 'version unknown'})` : `SKIPPED, ${status.note}`}`);
      }
    }
    // Our tools are Node programs: the cost of starting Node is a floor under every row of ours.
    const nodeStartup = await measureNodeStartup(tmpRoot);
    log(`bench: node start-up (node -e 0): median ${formatSeconds(nodeStartup.medianWallMs)}, rss ${formatRss(nodeStartup.maxRssKb)}`);
    const results = [];
    for (const scenario of scenarios) {
      let result;
      try {
        result = await runScenario({ scenario, options, toolStatus, serverKind, tmpRoot, repoRoot: oursRoot, log: process.env.BENCH_VERBOSE ? log : null });
      } catch (error) {
        // A scenario whose server or input cannot be set up is reported; the others still run.
        result = { name: scenario.name, title: scenario.title, kind: scenario.destination.type === 'info' ? 'info' : 'copy', bytes: scenarioSize(scenario, options.quick), server: { kind: serverKind, commands: [] }, error: error.message, rows: [], ratios: {} };
      }
      printScenario(result);
      results.push(result);
    }
    return {
      schema: 'nbd-toolkit-bench/1',
      startedAt,
      finishedAt: new Date().toISOString(),
      command: ['node', 'bench/run.mjs', ...process.argv.slice(2)].join(' '),
      label: options.label,
      quick: options.quick,
      runs: options.runs,
      warmup: options.warmup,
      machine: { ...describeMachine(), loadAverageAtStart: loadAtStart, nodeStartup },
      measurement: {
        wall: 'monotonic clock in the harness, from spawn to exit of the measured tool (its stdout, when piped, read to the end)',
        cpu: haveGnuTime() ? `user+sys of the tool and its children, from ${GNU_TIME} (median of runs)` : null,
        rss: haveGnuTime() ? `peak resident set size, from ${GNU_TIME} (max of runs)` : null,
        serverCpu: 'user+sys of the server process(es) during the run, from /proc/PID/stat (median of runs)',
        throughput: 'virtual size of the disk divided by the median wall time',
      },
      tools: {
        ...toolStatus,
        ours: toolStatus.ours ? { ...toolStatus.ours, root: oursRoot, commit: gitDescribe(oursRoot) } : undefined,
        server: { kind: serverKind, version: serverKind === 'nbdkit' ? versionOf(NBDKIT) : gitDescribe(oursRoot) },
        bench: { commit: gitDescribe(repoRoot) },
      },
      scenarios: results,
    };
  } finally {
    rmSync(tmpRoot, { recursive: true, force: true });
    dropCleanup();
  }
}

/** A saved result, with its ratios derived again so older files follow today's rules. */
function loadResult(path) {
  const result = JSON.parse(readFileSync(path, 'utf8'));
  for (const scenario of result.scenarios ?? []) scenario.ratios = scenarioRatios(scenario.rows ?? []);
  return result;
}

async function main(argv) {
  let options;
  try {
    options = parseBenchArgs(argv);
  } catch (error) {
    process.stderr.write(`bench: ${error.message}\n${USAGE}\n`);
    return 1;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.list) {
    listScenarios();
    return 0;
  }
  installSignalHandlers();

  const result = options.current ? loadResult(options.current) : await runBench(options);
  if (options.json) {
    writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
    log(`bench: wrote ${options.json}`);
  }
  if (options.svg) {
    writeFileSync(options.svg, renderSvg(result));
    log(`bench: wrote ${options.svg}`);
  }
  if (options.markdown) process.stdout.write(renderMarkdown(result));
  if (options.baseline) {
    const baseline = JSON.parse(readFileSync(options.baseline, 'utf8'));
    const comparison = compareResults(baseline, result, { thresholdPct: options.threshold });
    process.stdout.write(`\nCompared with ${options.baseline} (median wall time):\n${formatComparison(comparison)}\n`);
    return comparison.exitCode;
  }
  return 0;
}

// `node bench/run.mjs --markdown | head` must not end in an EPIPE stack trace.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`bench: ${process.env.NBD_DEBUG === '1' ? error.stack : error.message}\n`);
    process.exitCode = 1;
  },
);
