// The one place that loads libc through koffi. Each syscall wrapper in src/sys/ declares the
// functions it needs from here, so the FFI stays behind this folder.
import koffi, { type LibraryHandle } from 'koffi';
import { guardStdioFromExitFsync } from './exit-fsync-guard.js';

let libc: LibraryHandle | undefined;

export function loadLibc(): LibraryHandle {
  if (libc === undefined) {
    libc = koffi.load('libc.so.6');
    guardStdioFromExitFsync(libc);
  }
  return libc;
}

/** errno of the last failed call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

export { koffi };
