// The import rules of the project, checked by `npm run lint:deps` (and .ci/run). The layers,
// from the top: cli -> copy / info / server -> client -> tls / stream / sys -> protocol.
// Nothing imports upward, the three middle modules do not import each other, and src/ never
// reaches into the tests, the bench, or a dev dependency (the package ships without them).
// Type-only imports count: they tie the layers together just as much.

/** A rule that `from` may not import any of the directories of src/ named in `to`. */
function layer(name, from, to, comment, fromNot) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: `^src/(${from})/`, ...(fromNot ? { pathNot: fromNot } : {}) },
    to: { path: `^src/(${to.join('|')})(/|\\.ts$)` },
  };
}

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import circle: split the shared part into its own file.',
      severity: 'error',
      from: { path: '^(src|test|bench)/' },
      to: { circular: true },
    },
    {
      name: 'src-not-to-test-or-bench',
      comment: 'The library and tools never depend on the tests or the bench.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'src-not-to-dev-dependencies',
      comment: 'Users install only dependencies: src/ may not import a devDependency.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'src-not-to-entry-points',
      comment: 'src/index.ts is the library entry point for users, not a module of ours to import.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/index\\.ts$' },
      to: { path: '^src/index\\.ts$' },
    },
    layer('protocol-imports-nothing', 'protocol', ['cli', 'copy', 'info', 'server', 'client', 'tls', 'stream', 'sys', 'index'],
      'protocol is the pure wire codec at the bottom: it imports nothing of ours outside itself.'),
    layer('base-not-upward', 'tls|stream|sys', ['cli', 'copy', 'info', 'server', 'client', 'index'],
      'tls, stream and sys serve the client and the server: they may use protocol and each other only.'),
    layer('client-not-upward', 'client', ['cli', 'copy', 'info', 'server', 'index'],
      'The client is used by copy, info and server; it never imports them.'),
    layer('copy-not-sideways', 'copy', ['cli', 'info', 'server', 'index'],
      'copy is nbdcopy\'s engine: it uses the client and the base layer, never info, server or cli.'),
    layer('info-not-sideways', 'info', ['cli', 'copy', 'server', 'index'],
      'info is nbdinfo\'s engine: it uses the client and the base layer, never copy, server or cli.'),
    layer('server-not-sideways', 'server', ['cli', 'copy', 'info', 'index'],
      'The server never imports copy, info or cli.'),
    layer('server-not-to-client', 'server', ['client'],
      'The server speaks the protocol itself; only a backend that forwards to another NBD server ' +
      '(src/server/backends/nbd*.ts) may use the client. ' +
      'TEMPORARY exception: src/server/backends/types.ts imports the Extent type from client/types.ts ' +
      'until Extent moves to protocol (issue 13 part 3).',
      '^src/server/backends/(nbd[^/]*\\.ts|nbd/)|^src/server/backends/types\\.ts$'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.d.ts'],
    },
    moduleSystems: ['es6', 'cjs'],
  },
};
