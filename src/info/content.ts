// "content:" — what file(1) makes of the first sectors, as libnbd's nbdinfo reports it: the
// bytes go to a private temporary file and `file -b FILE` names them. Best effort: no file(1),
// or any failure, means no content line, never an error.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How much of the export libnbd hands to file(1). */
export const CONTENT_PROBE_BYTES = 8192;

export async function describeContent(firstBytes: Uint8Array): Promise<string | undefined> {
  const path = join(tmpdir(), `nbdinfo-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(path, firstBytes, { flag: 'wx', mode: 0o600 });
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
    await unlink(path).catch(() => undefined);
  }
}
