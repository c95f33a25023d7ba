// What we measure. Each scenario names a source and a destination; tools.mjs turns that
// into each tool's command line, so every tool does the same copy on the same server.
// Full sizes follow the issue; quick sizes keep the whole CI run under two minutes.

import { parseSize } from './sizes.mjs';

export const SCENARIOS = [
  {
    name: 'pattern-null',
    title: 'dense pattern to null:, default multi-conn',
    size: { full: '4G', quick: '1G' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'null' },
  },
  {
    name: 'pattern-null-c1',
    title: 'dense pattern to null:, one connection (-C 1)',
    size: { full: '4G', quick: '1G' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'null' },
    nbdcopyArgs: ['-C', '1'],
  },
  {
    name: 'pattern-file',
    title: 'dense pattern to a new local file',
    size: { full: '4G', quick: '512M' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'file' },
  },
  {
    name: 'sparse-file',
    title: 'sparse-random to a new local file',
    size: { full: '8G', quick: '2G' },
    source: { type: 'nbd', backend: 'sparse-random' },
    destination: { type: 'file' },
  },
  {
    name: 'holes-null',
    title: 'all-hole memory disk to null:',
    size: { full: '64G', quick: '64G' },
    source: { type: 'nbd', backend: 'memory' },
    destination: { type: 'null' },
    // Nothing to copy: the time is start-up, block status and teardown.
    startupBound: true,
  },
  {
    name: 'file-nbd',
    title: 'local file to NBD (memory)',
    size: { full: '1G', quick: '256M' },
    source: { type: 'file' },
    destination: { type: 'nbd', backend: 'memory' },
  },
  {
    name: 'nbd-nbd',
    title: 'NBD (pattern) to NBD (memory)',
    size: { full: '1G', quick: '512M' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'nbd', backend: 'memory' },
  },
  {
    name: 'nbd-stdout',
    title: 'NBD (pattern) to stdout, piped to a counting reader',
    size: { full: '1G', quick: '256M' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'stdout' },
  },
  {
    name: 'latency',
    title: 'pattern behind 1 ms read delay to null: (requests in flight matter)',
    size: { full: '1G', quick: '256M' },
    // Enough server threads that the server, not the client, is never the limit on
    // requests in flight.
    source: { type: 'nbd', backend: 'pattern', delayReadMs: 1, threads: 256 },
    destination: { type: 'null' },
  },
  // The same copies over a slow link, URI servers on both ends (the tool connects, default
  // multi-conn): with 2 ms per request and unlimited bandwidth, time goes to how many requests
  // each connection keeps in flight and to the client's CPU per reply.
  {
    name: 'delay2-null',
    title: 'pattern behind 2 ms read/write delay to null:',
    size: { full: '1G', quick: '256M' },
    source: { type: 'nbd', backend: 'pattern', delayReadMs: 2, delayWriteMs: 2, threads: 256 },
    destination: { type: 'null' },
  },
  {
    name: 'delay2-nbd',
    title: 'pattern to memory, both behind 2 ms read/write delay',
    size: { full: '1G', quick: '256M' },
    source: { type: 'nbd', backend: 'pattern', delayReadMs: 2, delayWriteMs: 2, threads: 256 },
    destination: { type: 'nbd', backend: 'memory', delayReadMs: 2, delayWriteMs: 2, threads: 256 },
  },
  {
    name: 'delay2-file',
    title: 'pattern behind 2 ms read/write delay to a new local file',
    size: { full: '1G', quick: '256M' },
    source: { type: 'nbd', backend: 'pattern', delayReadMs: 2, delayWriteMs: 2, threads: 256 },
    destination: { type: 'file' },
  },
  // When the link is the limit (about 200 MB/s and 20 ms each way), a tool can only reach
  // the link's speed: this row shows whether we do.
  {
    name: 'link-nbd',
    title: 'pattern to memory, both behind a 200 MB/s rate limit and 20 ms delay',
    size: { full: '512M', quick: '128M' },
    source: { type: 'nbd', backend: 'pattern', delayReadMs: 20, delayWriteMs: 20, rateBits: '1600M', threads: 256 },
    destination: { type: 'nbd', backend: 'memory', delayReadMs: 20, delayWriteMs: 20, rateBits: '1600M', threads: 256 },
  },
  {
    name: 'info-json',
    title: 'nbdinfo --json start-up on a Unix socket',
    size: { full: '1G', quick: '1G' },
    source: { type: 'nbd', backend: 'pattern' },
    destination: { type: 'info' },
    // A start-up time is short and noisy: take more samples.
    runsFactor: 3,
    startupBound: true,
  },
];

export function scenarioNames() {
  return SCENARIOS.map((scenario) => scenario.name);
}

/** The scenarios to run, in table order; throws on an unknown name. */
export function selectScenarios(names) {
  if (!names || names.length === 0) return SCENARIOS;
  const unknown = names.filter((name) => !SCENARIOS.some((scenario) => scenario.name === name));
  if (unknown.length > 0) {
    throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${scenarioNames().join(', ')})`);
  }
  return SCENARIOS.filter((scenario) => names.includes(scenario.name));
}

export function scenarioSize(scenario, quick) {
  return parseSize(quick ? scenario.size.quick : scenario.size.full);
}
