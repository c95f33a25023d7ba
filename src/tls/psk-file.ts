// Pre-shared key files as psktool(1) writes them: one `username:hexkey` per line.
// nbdkit, qemu and libnbd read the same format, so one file serves both sides.
import { readFileSync } from 'node:fs';
import { NbdError } from '../protocol/errors.js';

export type PskTable = ReadonlyMap<string, Buffer>;

const HEX_KEY = /^(?:[0-9a-fA-F]{2})+$/;

/** Parses the text of a PSK file; `where` names the file in error messages. */
export function parsePskFile(text: string, where: string): PskTable {
  const table = new Map<string, Buffer>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    // Keys are hex and never contain ':', so the last colon is the separator.
    const colon = line.lastIndexOf(':');
    if (colon <= 0) {
      throw new NbdError('EINVAL', `${where}:${i + 1}: expected 'username:hexkey'`);
    }
    const user = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (!HEX_KEY.test(hex)) {
      throw new NbdError('EINVAL', `${where}:${i + 1}: key for '${user}' is not an even number of hex digits`);
    }
    // The first entry wins, as in GnuTLS's own lookup.
    if (!table.has(user)) table.set(user, Buffer.from(hex, 'hex'));
  }
  if (table.size === 0) throw new NbdError('EINVAL', `${where}: PSK file has no keys`);
  return table;
}

/** Reads and parses a PSK file, turning file-system failures into one clear NbdError. */
export function loadPskFile(path: string): PskTable {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw fileError(err, path, 'PSK file');
  }
  return parsePskFile(text, path);
}

/** The key of `username` in the PSK file at `path`; a missing user is an error naming both. */
export function lookupPskKey(path: string, username: string): Buffer {
  const key = loadPskFile(path).get(username);
  if (key === undefined) {
    throw new NbdError('EACCES', `${path}: no key for user '${username}' in the PSK file`);
  }
  return key;
}

/** Maps a failed read of a credentials file to NbdError, keeping the OS reason. */
export function fileError(err: unknown, path: string, what: string): NbdError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return new NbdError('ENOENT', `${what} ${path}: no such file`, { cause: err });
  if (code === 'EACCES') return new NbdError('EACCES', `${what} ${path}: permission denied`, { cause: err });
  if (code === 'EISDIR') return new NbdError('EISDIR', `${what} ${path}: is a directory`, { cause: err });
  const why = err instanceof Error ? err.message : String(err);
  return new NbdError('EIO', `${what} ${path}: ${why}`, { cause: err });
}
