// Runs every README code block marked `runnable` (```ts runnable, ```sh runnable), so the
// examples users copy cannot rot. Each block runs in a fresh temp dir that holds `bin/` (our
// launchers) and `node_modules/nbd-toolkit` (this checkout, as the installed package would be);
// a block that names the socket /tmp/s gets a private `bin/nbdserve -U <dir>/s memory 1G`
// instead, started for it and reaped after it. TypeScript is compiled by esbuild, as is.
// A `console.log(...); // prints: TEXT` line is a claim the test checks: what it prints must
// be TEXT exactly (after the socket is substituted), or the example fails.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transform } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, REPO } from './helpers/build.js';
import { spawnNbdserve } from './helpers/embedded.js';
import { runAsync } from './helpers/run-tool.js';
import { teardownAfterEach } from './helpers/teardown.js';

interface RunnableBlock {
  language: 'ts' | 'sh';
  /** 1-based line of the opening fence, for test names and failures. */
  line: number;
  code: string;
}

/** The fenced blocks whose info string is `ts runnable` or `sh runnable`. */
function runnableBlocks(markdown: string): RunnableBlock[] {
  const blocks: RunnableBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)((?:\s+\S+)*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const end = lines.indexOf('```', i + 1);
    if (end < 0) throw new Error(`README.md:${i + 1}: code block never closed`);
    const words = open[2]!.trim().split(/\s+/);
    if (words.includes('runnable')) {
      const language = open[1]!;
      if (language !== 'ts' && language !== 'sh') throw new Error(`README.md:${i + 1}: runnable ${language} block: only ts and sh run`);
      blocks.push({ language, line: i + 1, code: lines.slice(i + 1, end).join('\n') + '\n' });
    }
    i = end;
  }
  return blocks;
}

const PRINTS = /^(\s*)console\.log\((.*)\);\s*\/\/ prints: (.*)$/;

/**
 * The block's code with each `// prints:` line made a check (the printed text must equal the
 * comment's; a mismatch sets exit code 1), and the texts promised, in order.
 */
export function withPrintChecks(code: string, firstLine: number): { code: string; promised: string[] } {
  const promised: string[] = [];
  const lines = code.split('\n').map((line, i) => {
    const m = PRINTS.exec(line);
    if (m === null) return line;
    promised.push(m[3]!);
    return `${m[1]}__prints(${firstLine + 1 + i}, ${JSON.stringify(m[3])}, ${m[2]});`;
  });
  if (promised.length === 0) return { code, promised };
  const helper = "import { format as __format } from 'node:util';\n" +
    'function __prints(line: number, promised: string, ...args: unknown[]): void {\n' +
    '  const got = __format(...args);\n  console.log(got);\n' +
    '  if (got !== promised) { console.error(`README.md:${line}: printed ${JSON.stringify(got)}, the comment says ${JSON.stringify(promised)}`); process.exitCode = 1; }\n' +
    '}\n';
  return { code: helper + lines.join('\n'), promised };
}

/** The placeholder socket of the examples; `\b` so /tmp/s2 or /tmp/src stay as written. */
const SOCKET_PLACEHOLDER = /\/tmp\/s\b/;

const blocks = runnableBlocks(readFileSync(join(REPO, 'README.md'), 'utf8'));

describe('README examples marked runnable', () => {
  const teardown = teardownAfterEach();

  it('cover connect, info, read/write, block status, copy, the embedded server and the CLIs', () => {
    const ts = blocks.filter((b) => b.language === 'ts').map((b) => b.code).join('\n');
    for (const call of ['connect(', '.export', '.pread(', '.pwrite(', '.blockStatus(', 'copy(', 'startServer(', '.preadStructured(', '.blockStatusFilter(']) {
      expect(ts, `no runnable ts example calls ${call}`).toContain(call);
    }
    expect(blocks.some((b) => b.language === 'sh'), 'no runnable sh example').toBe(true);
  });

  it('a `// prints:` comment is checked: the right text passes, another fails the example', async () => {
    const dir = teardown.tempDir('readme-prints-');
    const run = async (claim: string): Promise<{ status: number | null; stderr: string }> => {
      const { code, promised } = withPrintChecks(`const x = 1;\nconsole.log(x, 'ready');   // prints: ${claim}\n`, 10);
      expect(promised).toEqual([claim]);
      writeFileSync(join(dir, 'claim.mjs'), (await transform(code, { loader: 'ts', format: 'esm', target: 'node20' })).code);
      const r = await runAsync(process.execPath, ['claim.mjs'], { cwd: dir, timeout: 30_000 });
      return { status: r.status, stderr: r.stderr };
    };
    expect((await run('1 ready')).status).toBe(0);
    const wrong = await run('EINVAL ready');
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('README.md:12: printed "1 ready", the comment says "EINVAL ready"');
  });

  for (const block of blocks) {
    const title = `README.md:${block.line} (${block.language}): ${block.code.split('\n')[0]}`;
    it(title, async () => {
      ensureBuilt();
      const dir = teardown.tempDir('readme-example-');
      symlinkSync(join(REPO, 'bin'), join(dir, 'bin'));
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(REPO, join(dir, 'node_modules', 'nbd-toolkit'));
      let code = block.code;
      if (SOCKET_PLACEHOLDER.test(code)) {
        const server = await spawnNbdserve(['memory', '1G']);
        teardown.servers.push(server);
        code = code.replaceAll(new RegExp(SOCKET_PLACEHOLDER, 'g'), server.socket);
      }
      let result;
      let promised: string[] = [];
      if (block.language === 'ts') {
        ({ code, promised } = withPrintChecks(code, block.line));
        const js = await transform(code, { loader: 'ts', format: 'esm', target: 'node20' });
        writeFileSync(join(dir, 'example.mjs'), js.code);
        result = await runAsync(process.execPath, ['example.mjs'], { cwd: dir, timeout: 60_000 });
      } else {
        result = await runAsync('bash', ['-euo', 'pipefail', '-c', code], { cwd: dir, timeout: 60_000 });
      }
      const output = `${result.command} in ${dir}\n--- stdout\n${result.stdout.toString()}--- stderr\n${result.stderr}`;
      expect(result.status, output).toBe(0);
      // Every promised line was printed, in order (an example cannot skip its claims).
      const printed = result.stdout.toString().split('\n');
      let at = 0;
      for (const text of promised) {
        at = printed.indexOf(text, at) + 1;
        expect(at, `${output}\n--- never printed: ${text}`).toBeGreaterThan(0);
      }
    }, 90_000);
  }
});
