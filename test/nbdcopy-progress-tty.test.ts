// nbdcopy -p in a terminal (script(1) gives it a pty): a `[ CMD ]` server writing to stderr
// mid-copy never shares a screen line with the bar, the bar follows a resize, and at 40
// columns every frame holds whole fields (nothing cut) in at most 39 columns. With --batch:
// a labelled bar a running copy in a terminal, labelled plain lines otherwise.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, OUR_NBDCOPY } from './helpers/build.js';
import { makeTempDir } from './helpers/temp.js';
import { requireBinaries } from './helpers/binaries.js';
import { expectOneLine, nbdcopy } from './helpers/nbdcopy-process.js';

const MiB = 1 << 20;
const haveScript = spawnSync('script', ['--version']).status === 0;
const have = requireBinaries('nbdkit') && haveScript;

let dir: string;
let src: string;
beforeAll(() => {
  ensureBuilt();
  dir = makeTempDir('nbdcopy-tty-');
  src = join(dir, 'src.img');
  fs.writeFileSync(src, crypto.randomBytes(8 * MiB));
  return () => fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `shell` in a pty; returns everything the terminal received. */
function inTerminal(shell: string): { status: number | null; output: string } {
  const r = spawnSync('script', ['-q', '-f', '-e', '-c', shell, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: r.stdout };
}

/**
 * The lines a terminal shows after `output`: carriage return, line feed, cursor up and down
 * (CSI nA, nB), to a column (CSI nG), erase line (CSI 2K), to the right (CSI K, 0K) and below
 * (CSI J, 0J) are obeyed; other escape sequences change nothing visible here. No wrapping.
 */
function screenLines(output: string): string[] {
  const rows: string[][] = [[]];
  let row = 0;
  let col = 0;
  const pattern = /\x1b\[([0-9;?]*)([A-Za-z])|\x1b[78]|\r|\n|[^\x1b\r\n]/g;
  for (const m of output.matchAll(pattern)) {
    const token = m[0];
    const n = Number(m[1] || '1');
    rows[row] ??= [];
    if (token === '\n') {
      row++;
      col = 0;
    } else if (token === '\r') {
      col = 0;
    } else if (m[2] === 'A') {
      row = Math.max(0, row - n);
    } else if (m[2] === 'B') {
      row += n;
    } else if (m[2] === 'G') {
      col = n - 1;
    } else if (m[2] === 'K') {
      rows[row] = m[1] === '2' ? [] : rows[row]!.slice(0, col);
    } else if (m[2] === 'J') {
      rows[row] = rows[row]!.slice(0, col);
      rows.length = row + 1;
    } else if (m[2] === undefined && token.length === 1) {
      const line = rows[row]!;
      while (line.length < col) line.push(' ');
      line[col++] = token;
    }
  }
  return Array.from(rows, (r) => (r ?? []).join('').trimEnd()).filter((l) => l !== '');
}

/** The frames drawn: text between carriage returns, line feeds and escape sequences. */
function frames(output: string): string[] {
  return output.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]/g, '\r').split(/[\r\n]/).filter((f) => f.trim() !== '');
}

const BAR = /^\[[#-]+\] \d+%/;

describe.skipIf(!have)('nbdcopy -p in a terminal', () => {
  it('a [ CMD ] server writing to stderr mid-copy (nbdkit -v): its lines stand whole, never on the bar', () => {
    const out = join(dir, 'verbose-server.out');
    const r = inTerminal(`stty cols 60; "${OUR_NBDCOPY}" -p --rate=4M -- [ nbdkit -v -r file "${src}" ] "${out}"`);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(src))).toBe(true);
    const lines = screenLines(r.output);
    const server = lines.filter((l) => l.includes('nbdkit'));
    // nbdkit -v logs every read: many lines, written while the bar was up.
    expect(server.filter((l) => /pread count=/.test(l)).length).toBeGreaterThanOrEqual(16);
    for (const l of lines) expect(l).toMatch(/^nbdkit: |^\[[#-]+\] 100% /);
    // The bar was drawn between server lines (it is wiped and drawn again, not stopped).
    const barFrames = frames(r.output).filter((f) => BAR.test(f));
    expect(new Set(barFrames).size).toBeGreaterThan(5);
    // One final bar, last, and no stale one left above it.
    expect(lines.filter((l) => BAR.test(l))).toEqual([lines.at(-1)]);
  });

  it('--progress-json on the same stderr: each JSON line stands whole, never on the bar', () => {
    const out = join(dir, 'json.out');
    const r = inTerminal(`stty cols 60; "${OUR_NBDCOPY}" -p --progress-json --rate=4M "${src}" "${out}"`);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(src))).toBe(true);
    const lines = screenLines(r.output);
    const json = lines.filter((l) => l.startsWith('{'));
    // At 4M/s the 8 MiB copy takes 2 s: at least one progress event, then the summary.
    expect(json.length).toBeGreaterThanOrEqual(2);
    for (const l of json) expect(() => JSON.parse(l)).not.toThrow();
    expect(JSON.parse(json.at(-1)!)).toMatchObject({ event: 'done', bytes: 8 * MiB });
    for (const l of lines) expect(l).toMatch(/^\{"event":|^\[[#-]+\] 100% /);
    expect(lines.filter((l) => BAR.test(l))).toHaveLength(1);
  });

  it('a resize from 60 to 30 columns: the frames after it fit in 29 columns', () => {
    const out = join(dir, 'resize.out');
    // The marker is written half a second after the resize: a frame already due when the
    // resize signal came is drawn (at the old width) before Node handles the signal, and that
    // one frame is not "after" the resize. At 2M/s the copy runs 4 s, long past the marker.
    const r = inTerminal(`stty cols 60; "${OUR_NBDCOPY}" -p --rate=2M "${src}" "${out}" & sleep 1; stty cols 30; sleep 0.5; echo; echo RESIZED; wait $!`);
    expect(r.status).toBe(0);
    expect(fs.readFileSync(out).equals(fs.readFileSync(src))).toBe(true);
    const at = r.output.indexOf('RESIZED');
    expect(at).toBeGreaterThan(0);
    const before = frames(r.output.slice(0, at)).filter((f) => BAR.test(f));
    const after = frames(r.output.slice(at + 'RESIZED'.length)).filter((f) => BAR.test(f));
    expect(Math.max(...before.map((f) => f.length))).toBeGreaterThan(30);
    expect(after.length).toBeGreaterThan(0);
    for (const f of after) expect(f.length).toBeLessThanOrEqual(29);
    expect(after.at(-1)).toMatch(/100%/);
  });

  it('at 40 columns nothing is cut: every frame is the bar and whole fields, in at most 39 columns', () => {
    const out = join(dir, 'narrow.out');
    const r = inTerminal(`stty cols 40; "${OUR_NBDCOPY}" -p --rate=4M "${src}" "${out}"`);
    expect(r.status).toBe(0);
    const all = frames(r.output);
    expect(all.length).toBeGreaterThan(3);
    for (const f of all) {
      expect(f.length).toBeLessThanOrEqual(39);
      // Percent, then bytes done/total in full; rate and time left only when they fit whole.
      expect(f).toMatch(/^\[[#-]+\] \d+% [\d.]+ (bytes|KiB|MiB)\/8\.0 MiB( [\d.]+ (B|KiB|MiB)\/s)?( eta \S+)?$/);
    }
  });
});

describe('nbdcopy --batch -p', () => {
  const batch = (name: string) => {
    const file = join(dir, `${name}.jsonl`);
    const lines = [1, 2].map((i) => JSON.stringify({ source: src, destination: join(dir, `${name}${i}.out`) }));
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  };
  const exact = (name: string) => {
    for (const i of [1, 2]) expect(fs.readFileSync(join(dir, `${name}${i}.out`)).equals(fs.readFileSync(src))).toBe(true);
  };

  it('stderr not a terminal: plain lines, each naming its batch line, never \\r', async () => {
    const r = await nbdcopy([`--batch=${batch('plain')}`, '-p', '-j', '2', '--rate=4M']);
    expect(r.status).toBe(0);
    exact('plain');
    expect(r.stderr).not.toContain('\r');
    const lines = r.stderr.trim().split('\n');
    for (const l of lines) expect(l).toMatch(/^nbdcopy: batch line [12]: (\d+% |.* copied 8\.0 MiB in )/);
    for (const n of [1, 2]) {
      // Progress while running (at 4M/s for 2 s), then 100%, then the summary.
      const mine = lines.filter((l) => l.startsWith(`nbdcopy: batch line ${n}: `));
      expect(mine.filter((l) => /: \d+% /.test(l)).length).toBeGreaterThanOrEqual(2);
      expect(mine.at(-2)).toMatch(/: 100% 8\.0 MiB\/8\.0 MiB/);
      expect(mine.at(-1)).toMatch(/copied 8\.0 MiB/);
    }
  });

  it.skipIf(!haveScript)('in a 60-column terminal: one labelled bar per running copy, summaries above, no bar left', () => {
    const r = inTerminal(`stty cols 60; "${OUR_NBDCOPY}" --batch="${batch('tty')}" -p -j 2 --rate=4M`);
    expect(r.status).toBe(0);
    exact('tty');
    const bars = frames(r.output).filter((f) => /\] \d+%/.test(f));
    for (const f of bars) {
      expect(f).toMatch(/^line [12]: \[[#-]+\] \d+% /);
      expect(f.length).toBeLessThanOrEqual(59);
    }
    expect(bars.some((f) => f.startsWith('line 1: '))).toBe(true);
    expect(bars.some((f) => f.startsWith('line 2: '))).toBe(true);
    // What stays on the screen: the two summaries, and no bar.
    const screen = screenLines(r.output);
    expect(screen).toHaveLength(2);
    for (const l of screen) expect(l).toMatch(/^nbdcopy: batch line [12]: .* copied 8\.0 MiB in /);
  });

  it('--progress=FD with --batch: one line, exit 1, nothing written', async () => {
    expectOneLine(await nbdcopy([`--batch=${batch('fd')}`, '--progress=2']), /^nbdcopy: --batch: --progress=FD shows one copy; use -p or --progress-json/);
    expect(fs.existsSync(join(dir, 'fd1.out'))).toBe(false);
  });
});
