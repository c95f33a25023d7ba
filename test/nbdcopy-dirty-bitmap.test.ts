// nbdcopy --dirty-bitmap with qemu: a qcow2 with a bitmap, a full copy, new writes with
// qemu-io, then an incremental copy from `qemu-nbd -B NAME`: the destination equals the
// source (qemu-img compare) and only about the dirty bytes were copied.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startQemuNbd, type RunningServer } from './helpers/servers.js';
import { requireBinaries } from './helpers/binaries.js';
import { OUR_NBDCOPY } from './helpers/build.js';
import { hasExactlyOneErrorLine, run } from './helpers/run-tool.js';
import { toolSuite } from './helpers/tool-suite.js';

const MiB = 1 << 20;
const have = requireBinaries('qemu-img', 'qemu-io', 'qemu-nbd');
const suite = toolSuite();
const servers = suite.servers;

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { cwd: suite.dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

async function serve(args: string[]): Promise<RunningServer> {
  const s = await startQemuNbd(args);
  servers.push(s);
  return s;
}

/** The bytes this run copied, from -v. */
function copiedBytes(stderr: string): number {
  const m = /nbdcopy: dirty bitmap: copied (\d+) bytes/.exec(stderr);
  if (m === null) throw new Error(`no summary in: ${stderr}`);
  return Number(m[1]);
}

describe.skipIf(!have)('nbdcopy --dirty-bitmap', () => {
  it('copies only what changed since the bitmap was added', async () => {
    const img = path.join(suite.dir, 'src.qcow2');
    const out = path.join(suite.dir, 'dst.img');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', img, '64M']);
    sh('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 40M', '-c', 'write -P 0x12 48M 8M', img]);
    sh('qemu-img', ['bitmap', '--add', img, 'b0']);
    // The full copy, while nothing is dirty yet.
    const full = await serve(['-r', '-f', 'qcow2', img]);
    expect(run(OUR_NBDCOPY, [full.uri, out]).status).toBe(0);
    await full.stop();
    // New writes: data over data, data into a hole, zeroes over data (the destination must
    // get those zeroes: it holds the old data there).
    sh('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x22 1M 64k', '-c', 'write -P 0x33 42M 1M', '-c', 'write -z 20M 2M', img]);
    const dirty = 64 * 1024 + MiB + 2 * MiB;
    const before = fs.readFileSync(out);

    const inc = await serve(['-r', '-f', 'qcow2', '-B', 'b0', img]);
    const r = run(OUR_NBDCOPY, ['-v', '--dirty-bitmap=b0', inc.uri, out]);
    expect(r.status, r.stderr).toBe(0);
    const cmp = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, out], { encoding: 'utf8' });
    expect(cmp.stdout + cmp.stderr).toMatch(/Images are identical/);
    expect(cmp.status).toBe(0);
    // The bitmap's granularity is 64 KiB and every write above is aligned to it.
    expect(copiedBytes(r.stderr)).toBe(dirty);
    // Everything outside the dirty ranges was left alone.
    const after = fs.readFileSync(out);
    for (const [s, e] of [[0, MiB], [MiB + 65536, 20 * MiB], [22 * MiB, 42 * MiB], [43 * MiB, 64 * MiB]] as const) {
      expect(Buffer.compare(after.subarray(s, e), before.subarray(s, e)), `[${s}, ${e})`).toBe(0);
    }
  });

  it('is refused in one line without the context, or into a new or smaller destination', async () => {
    const img = path.join(suite.dir, 'r.qcow2');
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', img, '8M']);
    sh('qemu-img', ['bitmap', '--add', img, 'b1']);
    const plain = await serve(['-r', '-f', 'qcow2', img]);
    const withBitmap = await serve(['-r', '-f', 'qcow2', '-B', 'b1', img]);
    const small = path.join(suite.dir, 'small.img');
    fs.writeFileSync(small, Buffer.alloc(4 * MiB));
    const big = path.join(suite.dir, 'big.img');
    fs.writeFileSync(big, Buffer.alloc(8 * MiB, 7));
    const cases: Array<[string[], string | RegExp]> = [
      [['--dirty-bitmap=b1', plain.uri, big], `nbdcopy: --dirty-bitmap: ${plain.uri} does not offer the meta context qemu:dirty-bitmap:b1`],
      [['--dirty-bitmap=b9', withBitmap.uri, big], /does not offer the meta context qemu:dirty-bitmap:b9$/m],
      [['--dirty-bitmap=b1', withBitmap.uri, path.join(suite.dir, 'new.img')], /new\.img: the destination does not exist \(this copy writes into an existing one\)$/m],
      [['--dirty-bitmap=b1', withBitmap.uri, small], /small\.img \(4194304 bytes\) is smaller than the source \(8388608 bytes\)$/m],
      [['--dirty-bitmap=b1', withBitmap.uri, 'null:'], 'nbdcopy: --dirty-bitmap: the destination must be an existing image, not null:'],
      [['--dirty-bitmap=', withBitmap.uri, big], "nbdcopy: --dirty-bitmap: expected a value, got ''"],
      [['--dirty-bitmap=b1', '--verify', withBitmap.uri, big], 'nbdcopy: --dirty-bitmap cannot be combined with --blkhash or --verify (only the dirty ranges are read)'],
    ];
    for (const [args, message] of cases) {
      const r = run(OUR_NBDCOPY, args, { cwd: suite.dir });
      expect(r.stderr).toMatch(message);
      expect(hasExactlyOneErrorLine(r.stderr), r.stderr).toBe(true);
      expect(r.status).toBe(1);
    }
    expect(fs.existsSync(path.join(suite.dir, 'new.img'))).toBe(false);
    expect(fs.readFileSync(big).equals(Buffer.alloc(8 * MiB, 7))).toBe(true);
  });
});
