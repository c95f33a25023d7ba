'use strict';
// Shared by bin/nbdinfo, bin/nbdcopy and bin/nbdserve. Start-up time is part of the product
// (scripts run nbdinfo in loops), so a launcher runs the single-file CommonJS bundle made by
// `npm run build` (dist/bundle/<tool>.cjs): one file to read, no ES module loader, and Node
// modules required only by the code paths a command actually takes. When there is no bundle,
// or it is older than tsc's output, tsc's ES modules (dist/cli/<tool>.js) run instead:
// `npx tsc -p tsconfig.json` alone rebuilds dist/cli but not the bundle, and a stale bundle
// must never run in place of code just compiled. NBD_TOOLKIT_NO_BUNDLE=1 forces tsc's modules.
// These launchers are CommonJS (bin/package.json) because an ES module entry point costs
// several milliseconds of loader set-up before any of our code runs. bin/nbdcopy and
// bin/nbdinfo are also shell scripts: what must happen before Node starts is done there.
const { readFileSync, renameSync, statSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

function modifiedMs(path) {
  const stats = statSync(path, { throwIfNoEntry: false });
  return stats === undefined ? -1 : stats.mtimeMs;
}

/**
 * Compiles the bundle as require() would wrap it, with V8's code cache when the build left one
 * (dist/bundle/<tool>.v8cache, from training runs by scripts/train-code-cache.mjs): the
 * functions a typical run needs then skip parsing and compiling, about 5 ms of nbdinfo's CPU.
 * The cache counts only when written after the bundle: V8 itself rejects caches from another
 * Node or other flags (then everything is compiled as usual) but checks the source by length
 * only, so a rebuilt bundle must never meet an older cache.
 */
function compileBundle(bundle, bundleMs, cacheFile) {
  const vm = require('node:vm');
  const cachedData = modifiedMs(cacheFile) >= bundleMs ? readFileSync(cacheFile) : undefined;
  const source = readFileSync(bundle, 'utf8');
  return new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: bundle,
    cachedData,
    importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
}

function loadBundle(bundle, bundleMs, cacheFile) {
  const training = process.env.NBD_TOOLKIT_TRAIN_CODE_CACHE === '1';
  // Without a cache, plain require() costs the same, and a dynamic import() inside the bundle
  // works without the experimental warning Node 20 prints for one in a vm.Script (the training
  // script never makes a cache for a bundle that has one).
  if (!training && modifiedMs(cacheFile) < bundleMs) return require(bundle);
  const script = compileBundle(bundle, bundleMs, cacheFile);
  const loaded = { exports: {} };
  const { createRequire } = require('node:module');
  script.runInThisContext().call(loaded.exports, loaded.exports, createRequire(bundle), loaded, bundle, dirname(bundle));
  if (training) {
    // At exit every function this run used is compiled, so the cache holds all of them, and
    // those of the earlier training runs whose cache this run started from.
    process.on('exit', () => {
      writeFileSync(`${cacheFile}.tmp`, script.createCachedData());
      renameSync(`${cacheFile}.tmp`, cacheFile);
    });
  }
  return loaded.exports;
}

/**
 * The shell part of bin/nbdcopy and bin/nbdinfo starts Node without NODE_EXTRA_CA_CERTS when
 * the command line has no nbds URI (Node reads those certificates at start-up, at a cost), and
 * hands the value over under this name. Putting it back keeps the environment of subprocess
 * servers (`[ CMD ARGS ]`) exactly the user's; this process has no TLS to verify.
 */
const SAVED_EXTRA_CA_CERTS = 'NBD_TOOLKIT_SAVED_NODE_EXTRA_CA_CERTS';

function restoreEnvironment() {
  const saved = process.env[SAVED_EXTRA_CA_CERTS];
  if (saved === undefined) return;
  process.env.NODE_EXTRA_CA_CERTS = saved;
  delete process.env[SAVED_EXTRA_CA_CERTS];
}

module.exports = function launch(tool) {
  restoreEnvironment();
  const dist = join(__dirname, '..', 'dist');
  const argv = process.argv.slice(2);
  const bundle = join(dist, 'bundle', `${tool}.cjs`);
  const bundleMs = process.env.NBD_TOOLKIT_NO_BUNDLE === '1' ? -1 : modifiedMs(bundle);
  if (bundleMs >= 0 && bundleMs >= modifiedMs(join(dist, 'cli', `${tool}.js`))) {
    loadBundle(bundle, bundleMs, join(dist, 'bundle', `${tool}.v8cache`)).main(argv);
    return;
  }
  import(`../dist/cli/${tool}.js`).then(
    (cli) => cli.main(argv),
    (err) => {
      const why = String(err && err.message).replace(/\s*\n\s*/g, ' ');
      process.stderr.write(`${tool}: cannot load dist/cli/${tool}.js (run npm run build): ${why}\n`);
      process.exit(1);
    },
  );
};

// For tests: whether V8 takes the cache a build left.
module.exports.compileBundle = compileBundle;
