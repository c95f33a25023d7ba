// What each NBD command does to a backend, answered through the reply writer: reads (sent
// as data and hole chunks when the backend is sparse), writes, zeroes, trims, flushes, cache
// hints and block status. Fault injection, when configured, runs first.
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE, CMD_FLAG_PAYLOAD_LEN, CMD_FLAG_REQ_ONE,
  CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, CONTEXT_BASE_ALLOCATION, STATE_ZERO,
} from '../protocol/constants.js';
import type { Extent } from '../protocol/chunks.js';
import { NbdError } from '../protocol/errors.js';
import { decodeBlockStatusFilter } from '../protocol/requests.js';
import type { Backend } from './backends/types.js';
import type { FaultInjector, FaultKind } from './faults.js';
import type { ReplyWriter } from './reply-writer.js';
import type { ParsedRequest } from './request-parser.js';

/** Most extents one block status reply carries (the client asks again for the rest). */
const MAX_EXTENTS_PER_REPLY = 65536;
const U32_MAX = 0xffff_ffff;

const KIND_OF: Record<number, FaultKind> = {
  [CMD_READ]: 'read', [CMD_WRITE]: 'write', [CMD_WRITE_ZEROES]: 'zero', [CMD_TRIM]: 'trim',
  [CMD_FLUSH]: 'flush', [CMD_CACHE]: 'cache', [CMD_BLOCK_STATUS]: 'extents',
};

export class Commands {
  constructor(
    private readonly backend: Backend,
    private readonly replies: ReplyWriter,
    private readonly faults: FaultInjector,
    /** The export takes writes; a flush of a read-only export does nothing. */
    private readonly writable: boolean,
    /** Meta contexts the client selected; context id i + 1 is metaContexts[i]. */
    private readonly metaContexts: readonly string[],
  ) {}

  /** Runs a request that passed checkRequest; its reply is sent unless it throws. */
  async run(req: ParsedRequest): Promise<void> {
    if (this.faults.active) {
      const kind = KIND_OF[req.type]!;
      const delay = this.faults.delayFor(kind);
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const injected = this.faults.errorFor(kind);
      if (injected) throw injected;
    }
    const b = this.backend;
    const fua = (req.flags & CMD_FLAG_FUA) !== 0;
    switch (req.type) {
      case CMD_READ:
        return this.read(req);
      case CMD_WRITE:
        if (req.length > 0) await b.write(req.payload!, req.offset, fua);
        return this.replies.ok(req);
      case CMD_WRITE_ZEROES:
        if ((req.flags & CMD_FLAG_FAST_ZERO) !== 0 && !b.canFastZero) throw new NbdError('ENOTSUP', 'zeroing is not faster than writing on this export');
        if (req.length > 0) {
          await b.zero(req.offset, req.length, { noHole: (req.flags & CMD_FLAG_NO_HOLE) !== 0, fua, fast: (req.flags & CMD_FLAG_FAST_ZERO) !== 0 });
        }
        return this.replies.ok(req);
      case CMD_TRIM:
        if (req.length > 0) await b.trim(req.offset, req.length, fua);
        return this.replies.ok(req);
      case CMD_FLUSH:
        if (this.writable && b.canFlush) await b.flush();
        return this.replies.ok(req);
      case CMD_CACHE:
        if (req.length > 0) await b.cache(req.offset, req.length);
        return this.replies.ok(req);
      case CMD_BLOCK_STATUS:
        return this.blockStatus(req);
    }
  }

  private async read(req: ParsedRequest): Promise<void> {
    const { offset, length } = req;
    const b = this.backend;
    const replies = this.replies;
    const structured = replies.structured;
    if (structured && length === 0) return replies.none(req);
    const fragments = structured && b.sparse && (req.flags & CMD_FLAG_DF) === 0 ? await this.readLayout(offset, length) : undefined;
    if (!fragments) {
      const at = replies.readDataAt;
      const buf = replies.startRead(req);
      try {
        if (length > 0) await b.read(buf.subarray(at, at + length), offset);
      } catch (err) {
        replies.abandon(buf);
        throw err;
      }
      replies.sendRead(req, buf, at + length);
      return;
    }
    const reply = replies.startFragmentedRead(req, fragments);
    try {
      let pos = offset;
      for (let i = 0; i < fragments.length; i++) {
        const f = fragments[i]!;
        const at = reply.dataAt[i]!;
        if (at >= 0) await b.read(reply.buf.subarray(at, at + f.length), pos);
        pos += f.length;
      }
    } catch (err) {
      replies.abandon(reply.buf);
      throw err;
    }
    replies.sendRead(req, reply.buf, reply.total);
  }

  /**
   * Splits a read into data and zero runs, or returns undefined when it is all data (the
   * common case, sent as one chunk). Adjacent data runs are merged.
   */
  private async readLayout(offset: number, length: number): Promise<Extent[] | undefined> {
    const out: Extent[] = [];
    let pos = offset;
    const end = offset + length;
    let sawZero = false;
    while (pos < end) {
      const extents = await this.backend.extents(pos, end - pos);
      if (extents.length === 0) break;
      for (const e of extents) {
        const len = Math.min(e.length, end - pos);
        if (len <= 0) break;
        const zero = (e.flags & STATE_ZERO) !== 0 ? STATE_ZERO : 0;
        if (zero) sawZero = true;
        const last = out[out.length - 1];
        if (last && last.flags === zero) last.length += len;
        else out.push({ length: len, flags: zero });
        pos += len;
      }
    }
    if (pos < end) {
      // A backend that stopped short: the rest is sent as data, which is always correct.
      const last = out[out.length - 1];
      if (last && last.flags === 0) last.length += end - pos;
      else out.push({ length: end - pos, flags: 0 });
    }
    return sawZero ? out : undefined;
  }

  private async blockStatus(req: ParsedRequest): Promise<void> {
    const offset = req.offset;
    let length = req.length;
    let contexts = this.metaContexts;
    if ((req.flags & CMD_FLAG_PAYLOAD_LEN) !== 0) ({ length, contexts } = this.statusFilter(req));
    const reqOne = (req.flags & CMD_FLAG_REQ_ONE) !== 0;
    if (this.backend.blockStatus) {
      // A backend that answers for its own contexts (the nbd backend): one chunk per context
      // asked for (ids stay the positions in the whole selection).
      const extents = await this.backend.blockStatus(offset, length, contexts, reqOne);
      for (const name of extents.keys()) if (!contexts.includes(name)) extents.delete(name);
      if (!this.replies.contextsBlockStatus(req, this.metaContexts, extents, reqOne)) throw new NbdError('EIO', 'the backend returned no extents');
      return;
    }
    const extended = this.replies.extended;
    const end = offset + length;
    const list: Extent[] = [];
    let pos = offset;
    while (pos < end && list.length < MAX_EXTENTS_PER_REPLY) {
      const got = await this.backend.extents(pos, end - pos);
      if (got.length === 0) break;
      for (const e of got) {
        // Never describe past what was asked: lengths then always fit the reply's fields.
        const len = Math.min(e.length, end - pos, extended ? Number.MAX_SAFE_INTEGER : U32_MAX);
        if (len <= 0) break;
        const last = list[list.length - 1];
        if (last && last.flags === e.flags && (extended || last.length + len <= U32_MAX)) last.length += len;
        else list.push({ length: len, flags: e.flags });
        pos += len;
        if (pos >= end) break;
      }
      if (reqOne) break;
    }
    if (list.length === 0) throw new NbdError('EIO', 'backend returned no extents');
    if (reqOne) list.length = 1;
    this.replies.blockStatus(req, this.metaContexts.indexOf(CONTEXT_BASE_ALLOCATION) + 1, list);
  }

  /**
   * The effect length and contexts of a block status in the payload form (its size was
   * checked with the header): ids must be selected ones, each at most once, and the effect
   * length non-zero and within the export, else EINVAL (as the spec asks of the server).
   */
  private statusFilter(req: ParsedRequest): { length: number; contexts: string[] } {
    const f = decodeBlockStatusFilter(req.payload!);
    const contexts: string[] = [];
    for (const id of f.ids) {
      const name = this.metaContexts[id - 1];
      if (name === undefined) throw new NbdError('EINVAL', `block status payload names context id ${id}, which was not selected`);
      if (contexts.includes(name)) throw new NbdError('EINVAL', `block status payload names context id ${id} twice`);
      contexts.push(name);
    }
    const size = this.backend.size;
    if (f.length === 0) throw new NbdError('EINVAL', 'block status of length 0');
    if (req.offset > size || f.length > size - req.offset) {
      throw new NbdError('EINVAL', `request [${req.offset}, +${f.length}) is beyond the end of the export (${size} bytes)`);
    }
    return { length: f.length, contexts };
  }
}
