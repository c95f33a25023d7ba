// Opens local paths: regular files, block devices, FIFOs/character devices, stdin/stdout.
import fs from 'node:fs';
import type { DestinationHints, Endpoint } from '../endpoint.js';
import { FileEndpoint } from './file.js';
import { StreamEndpoint } from './stream.js';
import { wrapError } from '../errors.js';
import { NbdError } from '../../protocol/errors.js';
import { blockDeviceSize } from '../../sys/blockdev.js';

export function openStdin(): Endpoint {
  return new StreamEndpoint('stdin', 0, false);
}

export function openStdout(): Endpoint {
  return new StreamEndpoint('stdout', 1, false);
}

export function openLocalSource(path: string): Endpoint {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOCTTY);
  } catch (err) {
    throw wrapError(err, path);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new NbdError('EISDIR', `${path}: Is a directory`);
    if (st.isBlockDevice()) return new FileEndpoint({ name: path, fd, size: blockDeviceSize(fd), blockDevice: true, isZero: false });
    if (st.isFile()) return new FileEndpoint({ name: path, fd, size: st.size, blockDevice: false, isZero: false });
    return new StreamEndpoint(path, fd, true);
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof NbdError ? err : wrapError(err, path);
  }
}

/**
 * A regular (or new) file destination is truncated and sized like the source, so it is
 * known to read as zeroes; a block device keeps its size and contents.
 */
export function openLocalDestination(path: string, hints: DestinationHints): Endpoint {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrapError(err, path);
  }
  if (st?.isDirectory()) throw new NbdError('EISDIR', `${path}: Is a directory`);
  const { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_NOCTTY } = fs.constants;
  const access = hints.readBack === true ? O_RDWR : O_WRONLY;
  if (hints.keepContents === true && st === undefined) {
    throw new NbdError('ENOENT', `${path}: the destination does not exist (this copy writes into an existing one)`);
  }
  if (st !== undefined && (!st.isFile() || hints.keepContents === true)) {
    let fd: number;
    try {
      fd = fs.openSync(path, access | O_NOCTTY);
    } catch (err) {
      throw wrapError(err, path);
    }
    if (st.isBlockDevice()) {
      return new FileEndpoint({ name: path, fd, size: blockDeviceSize(fd), blockDevice: true, isZero: false });
    }
    if (st.isFile()) return new FileEndpoint({ name: path, fd, size: st.size, blockDevice: false, isZero: false });
    return new StreamEndpoint(path, fd, true);
  }
  let fd: number;
  try {
    fd = fs.openSync(path, access | O_CREAT | O_TRUNC | O_NOCTTY, 0o644);
  } catch (err) {
    throw wrapError(err, path);
  }
  try {
    if (hints.sourceSize !== undefined && hints.sourceSize > 0) fs.ftruncateSync(fd, hints.sourceSize);
  } catch (err) {
    fs.closeSync(fd);
    throw wrapError(err, `${path}: truncate`);
  }
  return new FileEndpoint({ name: path, fd, size: hints.sourceSize ?? 0, blockDevice: false, isZero: true, growable: true });
}
