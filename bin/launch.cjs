'use strict';
// Shared by bin/nbdinfo, bin/nbdcopy and bin/nbdserve. Start-up time is part of the product
// (scripts run nbdinfo in loops), so a launcher runs the single-file CommonJS bundle made by
// `npm run build` (dist/bundle/<tool>.cjs): one file to read, no ES module loader, and Node
// modules required only by the code paths a command actually takes. When there is no bundle,
// or it is older than tsc's output, tsc's ES modules (dist/cli/<tool>.js) run instead:
// `npx tsc -p tsconfig.json` alone rebuilds dist/cli but not the bundle, and a stale bundle
// must never run in place of code just compiled. NBD_TOOLKIT_NO_BUNDLE=1 forces tsc's modules.
// These launchers are CommonJS (bin/package.json) because an ES module entry point costs
// several milliseconds of loader set-up before any of our code runs.
const { statSync } = require('node:fs');
const { join } = require('node:path');

function modifiedMs(path) {
  const stats = statSync(path, { throwIfNoEntry: false });
  return stats === undefined ? -1 : stats.mtimeMs;
}

function bundleIsCurrent(dist, tool) {
  if (process.env.NBD_TOOLKIT_NO_BUNDLE === '1') return false;
  const bundle = modifiedMs(join(dist, 'bundle', `${tool}.cjs`));
  return bundle >= 0 && bundle >= modifiedMs(join(dist, 'cli', `${tool}.js`));
}

module.exports = function launch(tool) {
  const dist = join(__dirname, '..', 'dist');
  const argv = process.argv.slice(2);
  if (bundleIsCurrent(dist, tool)) {
    require(join(dist, 'bundle', `${tool}.cjs`)).main(argv);
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
