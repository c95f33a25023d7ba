// koffi's native library flushes its own stdout/stderr writers when the process exits, and for
// a descriptor that is a regular file or a device that flush is an fsync(2). On ext4 an fsync
// of a log file commits the journal, which waits for the data of every file written in that
// transaction: after a copy into a file, `nbdcopy SRC DST 2>log` spent a third of a second at
// exit writing the copy to disk, and `nbdcopy SRC - >image` synced the whole image, which
// nbdcopy never asks for unless --flush says so (and then it syncs the destination itself).
//
// So once koffi is loaded, process.exit points descriptors 1 and 2 at /dev/null just before the
// process ends, after every 'exit' listener has run: Node writes stdio to files and pipes
// synchronously, so nothing is pending then, and an fsync of /dev/null is refused at once.
// A program that ends by running out of work, not by process.exit, keeps koffi's behaviour:
// nothing runs between its last 'exit' listener and the end. In a worker thread process.exit
// ends only the thread, so the descriptors (the whole process's) are left alone there.
import fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import type { LibraryHandle } from 'koffi';

type Dup2 = (from: number, to: number) => number;
type ReallyExit = (code?: number) => never;

let installed = false;

/** Installs the guard (once); `libc` is the loaded C library. */
export function guardStdioFromExitFsync(libc: LibraryHandle): void {
  if (installed || !isMainThread) return;
  installed = true;
  const dup2 = libc.func('int dup2(int, int)') as Dup2;
  const host = process as unknown as { reallyExit: ReallyExit };
  const reallyExit = host.reallyExit;
  host.reallyExit = (code?: number): never => {
    try {
      const devNull = fs.openSync('/dev/null', 'w');
      dup2(devNull, 1);
      dup2(devNull, 2);
    } catch {
      // Without /dev/null the exit is as it would have been.
    }
    return reallyExit.call(process, code);
  };
}
