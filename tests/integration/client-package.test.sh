#!/usr/bin/env bash
# The presence client's package (clients/js): its pinned dependencies install from the lock file,
# its TypeScript declarations compile against a program that uses them (types.check.ts, under
# --strict), and `npm pack` would publish exactly the module, its types and its README.
set -euo pipefail
cd "$(dirname "$0")/../../clients/js"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi
npm run --silent typecheck
node --check presence.js

files=$(npm pack --dry-run --json | node -e '
let s = "";
process.stdin.on("data", (d) => (s += d)).on("end", () => {
    console.log(JSON.parse(s)[0].files.map((f) => f.path).sort().join(" "));
});')
want="README.md package.json presence.d.ts presence.js"
if [ "$files" != "$want" ]; then
    echo "npm pack would publish: $files (want: $want)" >&2
    exit 1
fi
echo "client package: types check, pack lists $files"
