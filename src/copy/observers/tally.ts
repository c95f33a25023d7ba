// Observer that counts the bytes a run covered (written or zeroed) and says so with -v: how a
// user, or a test, sees that an incremental copy copied only what changed.
import type { CopyObserver } from '../observer.js';

export function tallyObserver(label: string, log: (line: string) => void): CopyObserver {
  let bytes = 0;
  return {
    done(_offset, length) {
      bytes += length;
    },
    end() {
      log(`${label}: copied ${bytes} bytes`);
    },
  };
}
