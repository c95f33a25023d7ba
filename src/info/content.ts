// "content:" — what file(1) makes of the first sectors, as libnbd's nbdinfo reports it: the
// bytes go to a private temporary file and `file -b FILE` names them. Best effort: no file(1),
// or any failure, means no content line, never an error.
// A private directory from mkdtemp (libc picks the random name) rather than a random file name:
// loading node:crypto and node:fs/promises just for this costs about 2 ms of start-up.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How much of the export libnbd hands to file(1). */
export const CONTENT_PROBE_BYTES = 8192;

export async function describeContent(firstBytes: Uint8Array): Promise<string | undefined> {
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'nbdinfo-'));
    const path = join(dir, 'content');
    writeFileSync(path, firstBytes, { flag: 'wx', mode: 0o600 });
    const stdout = await new Promise<string | undefined>((resolve) => {
      execFile('file', ['-b', path], { encoding: 'utf8', timeout: 10_000 }, (err, out) => {
        resolve(err ? undefined : out);
      });
    });
    if (stdout === undefined || stdout === '') return undefined;
    const nl = stdout.indexOf('\n');
    return nl < 0 ? stdout : stdout.slice(0, nl);
  } catch {
    return undefined;
  } finally {
    if (dir !== undefined) removeQuietly(dir);
  }
}

/** The directory holds at most our one file; rmSync's recursive mode would load more of Node. */
function removeQuietly(dir: string): void {
  try {
    unlinkSync(join(dir, 'content'));
  } catch {
    // Never written.
  }
  try {
    rmdirSync(dir);
  } catch {
    // Best effort, like the probe itself.
  }
}
