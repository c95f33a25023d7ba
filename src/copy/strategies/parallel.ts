// The parallel strategy. Per connection, `lanes` async loops each pull work from that
// connection's planner: read -> (zero detection) -> write, or a zero request. Memory is
// lanes × connections × requestSize whatever the disk size. The first error stops every
// planner; lanes finish the request they hold (drain) and the copy rejects.
import { NbdError } from '../../protocol/errors.js';
import type { CopyRun } from '../copy-run.js';
import type { ConnectionPlanner, WorkItem } from '../planner.js';

/** Runs every lane to the end; the caller looks at run.error. */
export async function copyInParallel(run: CopyRun): Promise<void> {
  const lanes: Promise<void>[] = [];
  for (let c = 0; c < run.plan.connections; c++) {
    for (let l = 0; l < run.plan.lanesPerConnection; l++) lanes.push(lane(run, run.planners[c]!, c));
  }
  await Promise.all(lanes);
}

async function lane(run: CopyRun, planner: ConnectionPlanner, conn: number): Promise<void> {
  const item: WorkItem = { offset: 0, length: 0, zero: false };
  try {
    while (await planner.next(item)) {
      if (item.zero) await run.zeroRange(item.offset, item.length, conn);
      else await copyData(run, item.offset, item.length, conn);
      run.completed(item.offset, item.length);
    }
  } catch (err) {
    run.fail(err);
  }
}

/**
 * One data request: a pooled buffer (taken, for local sources, only once the destination
 * connection has room to send it) goes back to the pool as soon as its payload has left or
 * the request ends, so a few hot buffers serve all the requests in flight.
 */
async function copyData(run: CopyRun, offset: number, length: number, conn: number): Promise<void> {
  const wait = run.observers.beforeRead(offset, length);
  if (wait !== undefined) {
    await wait;
    // Released because the copy failed: this range is not done and must not be reported so.
    if (run.error !== undefined) throw run.error;
  }
  const window = run.windows[conn];
  if (window !== undefined) {
    const room = window.acquire(length);
    if (room !== undefined) await room;
    if (run.error !== undefined) {
      window.release(length);
      return;
    }
  }
  if (run.fileFd !== undefined && await copyFileData(run, run.fileFd, offset, length, conn)) return;
  const { source, pool } = run;
  let buffer: Buffer | undefined;
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    if (buffer !== undefined) pool.give(buffer);
    window?.release(length);
  };
  try {
    let view: Buffer;
    if (source.readTake !== undefined) {
      // The buffer is taken when the data arrives: usually the one the previous request
      // just gave back, still in the CPU cache.
      view = await source.readTake(offset, length, conn, () => {
        const b = pool.take();
        buffer = b;
        return length === b.length ? b : b.subarray(0, length);
      });
    } else {
      const b = pool.take();
      buffer = b;
      view = length === b.length ? b : b.subarray(0, length);
      const n = await source.read(view, offset, conn);
      if (n < length) throw new NbdError('EIO', `${source.name}: unexpected end of data at offset ${offset + n}`);
    }
    run.observers.data(offset, view);
    await run.writeData(view, offset, conn, run.releaseEarly ? release : undefined);
  } finally {
    release();
  }
}

/**
 * No buffer: the kernel moves the bytes from the page cache to the socket. Zero detection and
 * observers of data look at them through a memory map (no copy either). False when this
 * request must be read as usual (no map where one is needed, or the connection cannot).
 */
async function copyFileData(run: CopyRun, fd: number, offset: number, length: number, conn: number): Promise<boolean> {
  if (!run.destination.fileSink!.canWriteFromFile(conn)) return false;
  const needMap = run.plan.sparseSize > 0 || run.observers.wantsData;
  const mapped = needMap ? run.source.fileSource!.mappedBytes(offset, length) : undefined;
  if (needMap && mapped === undefined) return false;
  const window = run.windows[conn];
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    window?.release(length);
  };
  try {
    if (mapped !== undefined) run.observers.data(offset, mapped);
    await run.writeFileData(fd, mapped, offset, length, conn, release);
  } finally {
    release();
  }
  return true;
}
