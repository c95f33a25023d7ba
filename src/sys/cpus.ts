// The number of online CPUs as glibc's get_nprocs() counts them (libnbd's nbdcopy sizes its
// default --threads, and so its connections, by this; sched affinity does not enter into it).
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Counts the CPUs in a sysfs CPU list such as `0-3,6,8-9`; 0 when it cannot be parsed. */
export function countCpuList(list: string): number {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) return 0;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first) return 0;
    n += last - first + 1;
  }
  return n;
}

/** Online CPUs from /sys/devices/system/cpu/online, else what Node reports (at least 1). */
export function onlineCpus(): number {
  try {
    const n = countCpuList(readFileSync('/sys/devices/system/cpu/online', 'latin1'));
    if (n > 0) return n;
  } catch {
    // No sysfs (a container without it, another OS): Node's count is the next best.
  }
  return Math.max(1, availableParallelism());
}
