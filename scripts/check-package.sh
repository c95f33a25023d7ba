#!/usr/bin/env bash
# Checks the package as a user gets it: packs it (prepack builds dist/), installs the tarball
# into an empty folder without dev dependencies, then runs the installed tools through npx
# (nbdcopy --version, nbdinfo --json against nbdserve on a Unix socket, a copy) and type-checks
# a small ESM TypeScript consumer against the shipped .d.ts under strict settings.
# Usage: scripts/check-package.sh [TARBALL]   (without one, npm pack makes it)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server_pid=
# npx runs the server as its own child: the server is started in a process group of its own
# (setsid) and the whole group is stopped, or nbdserve would outlive npx.
stop_server() {
  kill -- "-$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
cleanup() {
  if [ -n "$server_pid" ]; then stop_server; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "check-package: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then
  tarball=$(realpath "$1")
else
  (cd "$repo" && npm pack --silent --pack-destination "$work" >/dev/null)
  tarball=$(ls "$work"/nbd-toolkit-*.tgz)
fi

# What the tarball holds: the build, the launchers, the notices; no tests, bench or sources.
listing=$(tar -tzf "$tarball")
for need in package/dist/index.js package/dist/index.d.ts package/dist/server/index.d.ts \
  package/dist/bundle/nbdcopy.cjs package/dist/bundle/nbdinfo.cjs package/dist/bundle/nbdserve.cjs \
  package/bin/nbdcopy package/bin/nbdinfo package/bin/nbdserve package/bin/launch.cjs \
  package/README.md package/LICENSE; do
  grep -qx "$need" <<<"$listing" || fail "$need is missing from $(basename "$tarball")"
done
if grep -E '^package/(src|test|bench|scripts|\.ci)/' <<<"$listing" | head -1 | grep -q .; then
  fail "the tarball holds files that are not for users: $(grep -E '^package/(src|test|bench|scripts|\.ci)/' <<<"$listing" | head -3 | tr '\n' ' ')"
fi

# The consumer: an empty project that installs the tarball and nothing from our checkout. It
# denies koffi's install script (npm's future default): its prebuilt binary must be enough.
app=$work/app
mkdir "$app"
cat >"$app/package.json" <<'EOF'
{ "name": "consumer", "private": true, "type": "module", "allowScripts": { "koffi": false } }
EOF
cd "$app"
npm install --omit=dev --no-audit --no-fund --loglevel=error "$tarball" >/dev/null
[ ! -e node_modules/typescript ] || fail "a dev dependency was installed"

version=$(npx --no-install nbdcopy --version)
grep -q '^nbdcopy ' <<<"$version" || fail "npx nbdcopy --version printed: $version"

sock=$work/nbd.sock
setsid npx --no-install nbdserve -U "$sock" pattern 4M &
server_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "npx nbdserve did not create $sock"
uri="nbd+unix:///?socket=$sock"
size=$(npx --no-install nbdinfo --json "$uri" | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>console.log(JSON.parse(s).exports[0]["export-size"]))')
[ "$size" = 4194304 ] || fail "npx nbdinfo --json reported export-size $size, expected 4194304"

npx --no-install nbdcopy "$uri" "$work/copy.img"
node -e '
  const b = require("node:fs").readFileSync(process.argv[1]);
  if (b.length !== 4 << 20) throw new Error(`copy is ${b.length} bytes`);
  for (let o = 0; o < b.length; o += 8) if (b.readBigUInt64BE(o) !== BigInt(o)) throw new Error(`word at ${o} is not the pattern`);
' "$work/copy.img" || fail "the copy made by npx nbdcopy does not hold nbdserve's pattern"
stop_server
! pgrep -f "nbdserve -U $sock" >/dev/null || fail "nbdserve still runs after its process group was stopped"

# The library from TypeScript, strict, against the shipped types only (typescript and
# @types/node come from the checkout: they are the consumer's dev tools, not ours to ship).
cat >"$app/consumer.ts" <<'EOF'
import { connect, NbdError, protocol, type ExportInfo, type NbdClient } from 'nbd-toolkit';
import { startServer, type RunningServer } from 'nbd-toolkit/server';

const server: RunningServer = await startServer({ backend: ['memory', '1M'] });
const nbd: NbdClient = await connect(server.uri);
const facts: ExportInfo = nbd.export;
const size: number = facts.size;
const buf = Buffer.alloc(4096);
await nbd.pread(buf, 0);
await nbd.pwrite(buf, size - 4096);
const failure: NbdError | undefined = undefined;
const magic: number = protocol.REQUEST_MAGIC;
console.log(size, failure, typeof magic);
await nbd.close();
await server.close();
EOF
cat >"$app/tsconfig.json" <<EOF
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
    "noEmit": true, "skipLibCheck": false, "types": ["node"],
    "typeRoots": ["$repo/node_modules/@types"]
  },
  "files": ["consumer.ts"]
}
EOF
node "$repo/node_modules/typescript/bin/tsc" -p "$app/tsconfig.json" || fail "the TypeScript consumer does not type-check against the shipped types"
echo "check-package: $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB, $(wc -l <<<"$listing") files): npx nbdcopy/nbdinfo/nbdserve and the typed library work from a clean install"
