// The clean-up stack of a test file: whatever a test started pushes how to undo it, and an
// afterEach hook runs those, newest first, one at a time (a client before its server, a server
// before its temp dir).
import { afterEach } from 'vitest';

export type Cleanup = () => Promise<void> | void;

/** Registers the afterEach hook of this test file and returns the stack it empties. */
export function cleanupsAfterEach(): Cleanup[] {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return cleanups;
}
