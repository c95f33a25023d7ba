// CPU time a running server has used so far, from /proc/PID/stat, so each run can be charged
// with the server work it caused: a client that asks in small pieces makes the server burn
// more, and on a 2-core machine that CPU is taken from the client.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond = null;

function clockTicks() {
  if (ticksPerSecond == null) {
    const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    ticksPerSecond = Number(result.stdout?.trim()) || 100;
  }
  return ticksPerSecond;
}

/** user+sys milliseconds from the text of /proc/PID/stat (fields 14 and 15). */
export function cpuMsFromStat(text, ticks = 100) {
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / ticks;
}

/** Total CPU milliseconds of these processes so far; null when /proc cannot tell. */
export function processesCpuMs(pids) {
  let total = 0;
  for (const pid of pids) {
    let text;
    try {
      text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return null;
    }
    const ms = cpuMsFromStat(text, clockTicks());
    if (ms == null) return null;
    total += ms;
  }
  return total;
}
