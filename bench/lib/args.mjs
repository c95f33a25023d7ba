// Command line of bench/run.mjs. Pure: argv in, options out, Error on bad input.

import { parseArgs } from 'node:util';

export const USAGE = `usage: node bench/run.mjs [options]   (or: npm run bench -- [options])

  --quick               small sizes, whole run under 2 minutes (what CI runs)
  --scenario NAME       run only these scenarios (repeatable, or a comma list)
  --tool ID             race only these tools: ours, libnbd, qemu-img (repeatable/comma list)
  --runs N              measured runs per tool and scenario (default 3; after 1 warm-up)
  --no-warmup           skip the unmeasured warm-up run
  --server KIND         nbdkit or nbdserve (default: nbdkit when installed)
  --ours DIR            race DIR/bin/nbdcopy etc. instead of this checkout's (e.g. a snapshot)
  --label TEXT          a note stored in the JSON and shown above the tables (e.g. the commit)
  --json FILE           write machine-readable results (machine, versions, exact commands)
  --markdown            print the results as Markdown tables
  --svg FILE            write a chart of our time / their time per scenario
  --baseline FILE       compare against an earlier --json file: what got slower or faster
  --threshold PCT       with --baseline: exit 2 if any of our rows is more than PCT% slower
  --current FILE        with --baseline: compare this JSON instead of running the bench
  --list                list the scenarios and exit
  -h, --help            this text`;

function splitList(values) {
  return (values ?? []).flatMap((value) => value.split(',')).map((value) => value.trim()).filter(Boolean);
}

function positiveNumber(text, name, { integer }) {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name}: expected a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(text)}`);
  }
  return value;
}

export function parseBenchArgs(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string', multiple: true },
      tool: { type: 'string', multiple: true },
      runs: { type: 'string' },
      'no-warmup': { type: 'boolean', default: false },
      server: { type: 'string' },
      ours: { type: 'string' },
      label: { type: 'string' },
      json: { type: 'string' },
      markdown: { type: 'boolean', default: false },
      svg: { type: 'string' },
      baseline: { type: 'string' },
      threshold: { type: 'string' },
      current: { type: 'string' },
      list: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (positionals.length > 0) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}`);
  if (values.server !== undefined && !['nbdkit', 'nbdserve'].includes(values.server)) {
    throw new Error(`--server: expected nbdkit or nbdserve, got ${JSON.stringify(values.server)}`);
  }
  const tools = splitList(values.tool);
  const badTool = tools.find((tool) => !['ours', 'libnbd', 'qemu-img'].includes(tool));
  if (badTool) throw new Error(`--tool: unknown tool ${JSON.stringify(badTool)} (ours, libnbd, qemu-img)`);
  if (values.threshold !== undefined && values.baseline === undefined) {
    throw new Error('--threshold needs --baseline FILE');
  }
  if (values.current !== undefined && values.baseline === undefined) {
    throw new Error('--current needs --baseline FILE');
  }
  return {
    quick: values.quick,
    scenarios: splitList(values.scenario),
    tools: tools.length > 0 ? tools : ['ours', 'libnbd', 'qemu-img'],
    runs: values.runs === undefined ? 3 : positiveNumber(values.runs, 'runs', { integer: true }),
    warmup: !values['no-warmup'],
    server: values.server ?? null,
    ours: values.ours ?? null,
    label: values.label ?? null,
    json: values.json ?? null,
    markdown: values.markdown,
    svg: values.svg ?? null,
    baseline: values.baseline ?? null,
    threshold: values.threshold === undefined ? null : positiveNumber(values.threshold, 'threshold', { integer: false }),
    current: values.current ?? null,
    list: values.list,
    help: values.help,
  };
}
