// The ranges a qemu dirty bitmap marks as changed (meta context `qemu:dirty-bitmap:NAME`),
// for incremental copies (--dirty-bitmap): only those are copied.
import type { Endpoint } from './endpoint.js';
import type { RangeList } from './done-ranges.js';
import type { RangeSource } from './range-source.js';
import { NbdError } from '../protocol/errors.js';

/** The bit of a dirty-bitmap extent that says it changed (qemu's NBD_STATE_DIRTY). */
const STATE_DIRTY = 1;

export function dirtyBitmapContext(bitmap: string): string {
  return `qemu:dirty-bitmap:${bitmap}`;
}

export class DirtyBitmapRanges implements RangeSource {
  readonly name: string;
  /** Bytes reported dirty so far. */
  dirtyBytes = 0;

  constructor(private readonly source: Endpoint, private readonly context: string) {
    this.name = context;
    if (source.contextExtents === undefined || !(source.metaContexts ?? []).includes(context)) {
      throw new NbdError('ENOTSUP', `--dirty-bitmap: ${source.name} does not offer the meta context ${context}`);
    }
  }

  async ranges(offset: number, length: number, conn: number): Promise<RangeList> {
    const out: RangeList = [];
    const end = offset + length;
    let at = offset;
    while (at < end) {
      const extents = await this.source.contextExtents!(this.context, at, end - at, conn);
      const before = at;
      for (const e of extents) {
        if (e.offset !== at || e.length <= 0) break;
        const to = Math.min(end, at + e.length);
        if ((e.flags & STATE_DIRTY) !== 0) {
          const last = out[out.length - 1];
          if (last !== undefined && last[1] === at) last[1] = to;
          else out.push([at, to]);
          this.dirtyBytes += to - at;
        }
        at = to;
        if (at >= end) break;
      }
      if (at === before) {
        throw new NbdError('EPROTO', `${this.source.name}: block status for ${this.context} at ${at} made no progress`);
      }
    }
    return out;
  }
}
