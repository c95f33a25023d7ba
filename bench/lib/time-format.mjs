// The measuring wrapper: GNU time (Debian package "time") writes one line per run with
// the format below into a file, so the measured tool's own stderr stays untouched.

/** Elapsed, user and system seconds, then peak resident set size in KiB. */
export const TIME_FORMAT = '%e %U %S %M';

/**
 * Parse the file GNU time wrote. When the command failed, GNU time puts a line such as
 * "Command exited with non-zero status 1" before the figures, so take the last line that
 * has the four numbers.
 */
export function parseTimeOutput(text) {
  const lines = String(text).trim().split('\n').reverse();
  for (const line of lines) {
    const match = /^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s*$/.exec(line);
    if (match) {
      return {
        elapsedMs: Number(match[1]) * 1000,
        userMs: Number(match[2]) * 1000,
        sysMs: Number(match[3]) * 1000,
        maxRssKb: Number(match[4]),
      };
    }
  }
  return null;
}
