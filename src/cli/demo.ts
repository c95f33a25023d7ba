// The README's main job, end to end on the embedded server, with nothing else installed:
// serve a sparse demo disk, describe it with nbdinfo, copy it to a local file with a progress
// bar, then show that the copy is identical and stayed sparse.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const tool = (name: string): string => join(repo, 'bin', name);

function show(argv: string[], suffix = ''): void {
  const printable = argv.map((a) => (a.startsWith(repo) ? a.slice(repo.length + 1) : a));
  process.stdout.write(`\n$ ${printable.map((a) => (/[\s?&*]/.test(a) ? `'${a}'` : a)).join(' ')}${suffix}\n`);
}

function run(argv: string[]): void {
  show(argv);
  const result = spawnSync(argv[0]!, argv.slice(1), { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${argv[0]} exited with status ${result.status ?? result.signal}`);
}

async function waitForSocket(path: string, server: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (existsSync(path)) return;
    if (server.exitCode !== null) throw new Error(`nbdserve exited with status ${server.exitCode}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('nbdserve did not create its socket within 5 s');
}

async function sha256Stream(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sha256OfExport(uri: string): Promise<string> {
  const child = spawn(tool('nbdcopy'), [uri, '-'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const digest = await sha256Stream(child.stdout);
  const status = await new Promise<number | null>((r) => child.on('close', r));
  if (status !== 0) throw new Error(`nbdcopy to stdout exited with status ${status}`);
  return digest;
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

export async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'nbd-demo-'));
  const socket = join(work, 'demo.sock');
  const image = join(work, 'demo.img');
  const serverArgv = [tool('nbdserve'), '-U', socket, 'sparse-random', '1G'];
  show(serverArgv, ' &');
  const server = spawn(serverArgv[0]!, serverArgv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] });
  const stop = (): void => {
    if (server.exitCode === null) server.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  };
  process.on('SIGINT', () => { stop(); process.exit(130); });
  try {
    await waitForSocket(socket, server);
    const uri = `nbd+unix:///?socket=${socket}`;
    run([tool('nbdinfo'), uri]);
    run([tool('nbdinfo'), '--map', '--totals', uri]);
    run([tool('nbdcopy'), '--progress', uri, image]);

    const st = statSync(image);
    const allocated = st.blocks * 512;
    process.stdout.write(`\n${image}: size ${mib(st.size)}, allocated ${mib(allocated)}\n`);
    const [source, copy] = await Promise.all([sha256OfExport(uri), sha256Stream(createReadStream(image))]);
    process.stdout.write(`sha256 of the export: ${source}\nsha256 of the copy:   ${copy}\n`);
    if (source !== copy) throw new Error('the copy differs from the export');
    if (allocated >= st.size / 2) throw new Error('the copy is not sparse');
    process.stdout.write('demo: the copy is identical and sparse\n');
  } finally {
    stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
