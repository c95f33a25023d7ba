// Last step of `npm run build`: trains the V8 code caches that bin/launch.cjs hands to V8 when
// it compiles a bundle (dist/bundle/<tool>.v8cache). Each training run is a real command of the
// bundled CLI against our own server on a private socket; with NBD_TOOLKIT_TRAIN_CODE_CACHE=1
// the launcher saves, at exit, every function compiled so far, starting from the cache of the
// previous run, so the cache ends up holding the functions of all the runs below.
// The cache only saves start-up time: a failed training run is reported and its cache removed,
// and the build still succeeds (the bundles then compile as usual).
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The package whose bin/ and dist/bundle/ are trained: this one, or the one named on the command
// line (tests train a private copy). The server always comes from this package's dist/.
const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = process.argv[2] ?? here;
const bundleDir = join(root, 'dist', 'bundle');

function run(tool, args) {
  const env = { ...process.env, NBD_TOOLKIT_TRAIN_CODE_CACHE: '1' };
  delete env.NBD_TOOLKIT_NO_BUNDLE;
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin', tool), ...args], {
      env,
      timeout: 30_000,
      maxBuffer: 16 << 20,
    }, (err, _stdout, stderr) => resolve(err ? `${err.message.split('\n')[0]} ${stderr.trim()}` : undefined));
  });
}

// Caches of an earlier build are stale by definition (the launcher would ignore them anyway).
for (const f of readdirSync(bundleDir)) if (f.endsWith('.v8cache')) rmSync(join(bundleDir, f));

const dir = mkdtempSync(join(tmpdir(), 'nbd-train-'));
const { startServer } = await import(pathToFileURL(join(here, 'dist', 'server', 'index.js')).href);
const server = await startServer({ unixSocket: join(dir, 'sock'), backend: ['memory', '1M'] });
const uri = `nbd+unix:///?socket=${join(dir, 'sock')}`;
const plan = {
  nbdinfo: [['--json', uri], [uri], ['--map', uri], ['--size', uri]],
  nbdcopy: [[uri, 'null:'], [uri, join(dir, 'copy.img')]],
};
try {
  for (const [tool, runs] of Object.entries(plan)) {
    // An import() in a vm.Script needs an experimental Node 20 feature that prints a warning,
    // so such a bundle gets no cache and the launcher require()s it.
    if (/\bimport\(/.test(readFileSync(join(bundleDir, `${tool}.cjs`), 'utf8'))) {
      process.stderr.write(`train-code-cache: ${tool}'s bundle has a dynamic import(), so no code cache for it\n`);
      continue;
    }
    for (const args of runs) {
      const failure = await run(tool, args);
      if (failure === undefined) continue;
      process.stderr.write(`train-code-cache: ${tool} ${args.join(' ')} failed, no code cache for ${tool}: ${failure}\n`);
      rmSync(join(bundleDir, `${tool}.v8cache`), { force: true });
      break;
    }
  }
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
