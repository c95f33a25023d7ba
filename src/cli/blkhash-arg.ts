// The value of nbdcopy's --blkhash[=ALG[/SIZE]]: a digest name and a block size (libnbd 1.24).
import { NbdError } from '../protocol/errors.js';
import { parseSize } from './size-suffix.js';
import { DEFAULT_BLOCK_HASH, HASH_ALGORITHMS, type BlockHashSpec, type HashAlgorithm } from '../copy/block-digests.js';

/** Blocks are assembled in memory when cut by requests: keep one block a sane size. */
const MAX_BLOCK_SIZE = 1 << 30;

/** `text` undefined: the bare option (sha256, 64 KiB blocks). */
export function parseBlkhash(text: string | undefined): BlockHashSpec {
  if (text === undefined) return DEFAULT_BLOCK_HASH;
  const slash = text.indexOf('/');
  const name = (slash < 0 ? text : text.slice(0, slash)).toLowerCase();
  if (!HASH_ALGORITHMS.includes(name as HashAlgorithm)) {
    throw new NbdError('EINVAL', `--blkhash: unknown digest '${text.slice(0, slash < 0 ? undefined : slash)}' (md5, sha1, sha256 or sha512)`);
  }
  if (slash < 0) return { algorithm: name as HashAlgorithm, blockSize: DEFAULT_BLOCK_HASH.blockSize };
  const blockSize = parseSize(text.slice(slash + 1), '--blkhash');
  if (blockSize < 1 || blockSize > MAX_BLOCK_SIZE || 2 ** Math.round(Math.log2(blockSize)) !== blockSize) {
    throw new NbdError('EINVAL', `--blkhash: the block size must be a power of 2 up to 1G, not '${text.slice(slash + 1)}'`);
  }
  return { algorithm: name as HashAlgorithm, blockSize };
}
