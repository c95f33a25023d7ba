// The tools we race: ours (bin/ in this repo, always by path so PATH can never swap in
// libnbd's), libnbd's nbdcopy/nbdinfo, and qemu-img. Command builders are pure so the
// JSON can record the exact argv every row used.

import { join } from 'node:path';

export const TOOL_IDS = ['ours', 'libnbd', 'qemu-img'];

/** Program paths per tool and job ('copy' or 'info'). */
export function programs(repoRoot) {
  return {
    ours: { copy: join(repoRoot, 'bin/nbdcopy'), info: join(repoRoot, 'bin/nbdinfo') },
    libnbd: { copy: '/usr/bin/nbdcopy', info: '/usr/bin/nbdinfo' },
    'qemu-img': { copy: '/usr/bin/qemu-img', info: '/usr/bin/qemu-img' },
  };
}

export function jobOf(scenario) {
  return scenario.destination.type === 'info' ? 'info' : 'copy';
}

function nbdcopyDestination(dst) {
  switch (dst.kind) {
    case 'null':
      return 'null:';
    case 'stdout':
      return '-';
    case 'file':
      return dst.path;
    case 'nbd':
      return dst.uri;
    default:
      throw new Error(`no nbdcopy destination for ${dst.kind}`);
  }
}

function endpointArg(end) {
  return end.kind === 'nbd' ? end.uri : end.path;
}

/**
 * The command one tool runs for one scenario, or { skip } with the reason it cannot.
 * ctx: { program, src: {kind, uri|path}, dst: {kind, uri|path}, size, nbdcopyArgs }
 */
export function buildCommand(toolId, ctx) {
  const { program, src, dst, size } = ctx;
  if (dst.kind === 'info') {
    if (toolId === 'qemu-img') return { argv: [program, 'info', '--output=json', src.uri], stdout: 'ignore' };
    return { argv: [program, '--json', src.uri], stdout: 'ignore' };
  }
  if (toolId === 'ours' || toolId === 'libnbd') {
    const argv = [program, ...(ctx.nbdcopyArgs ?? []), endpointArg(src), nbdcopyDestination(dst)];
    return { argv, stdout: dst.kind === 'stdout' ? 'count' : 'ignore' };
  }
  // qemu-img convert: -W allows out-of-order writes, like nbdcopy; coroutines stay at the
  // default, as users run it. It always uses a single NBD connection.
  const base = [program, 'convert', '-W', '-f', 'raw'];
  switch (dst.kind) {
    case 'null':
      // Its null-co driver plays the part of nbdcopy's null: (-O is not allowed with image opts).
      return {
        argv: [...base, '-n', endpointArg(src), '--target-image-opts', `driver=null-co,size=${size}`],
        stdout: 'ignore',
      };
    case 'file':
      return { argv: [...base, '-O', 'raw', endpointArg(src), dst.path], stdout: 'ignore' };
    case 'nbd':
      return { argv: [...base, '-n', '-O', 'raw', endpointArg(src), dst.uri], stdout: 'ignore' };
    case 'stdout':
      return { skip: 'qemu-img convert cannot write to a pipe' };
    default:
      return { skip: `no qemu-img command for ${dst.kind}` };
  }
}
