// A description of the machine, so a result file says where its figures came from.

import { spawnSync } from 'node:child_process';
import os from 'node:os';

export function describeMachine() {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    platform: os.platform(),
    arch: os.arch(),
    kernel: `${os.type()} ${os.release()}`,
    kernelVersion: os.version(),
    node: process.version,
    loadAverageAtEnd: os.loadavg(),
  };
}

/** First line of `program --version`, or null when it does not run. */
export function versionOf(program, args = ['--version']) {
  const result = spawnSync(program, args, { encoding: 'utf8', timeout: 15000 });
  if (result.status !== 0 || !result.stdout) return null;
  return result.stdout.trim().split('\n')[0];
}

/** The commit our tools were built from, marked when the tree had local changes. */
export function gitDescribe(repoRoot) {
  const result = spawnSync('git', ['-C', repoRoot, 'describe', '--always', '--dirty'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}
