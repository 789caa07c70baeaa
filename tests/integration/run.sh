#!/usr/bin/env bash
# Runs the Node.js integration tests against a presenced binary.
# Usage: tests/integration/run.sh <path-to-presenced>     (callable from any directory)
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 <path-to-presenced-binary> [node --test args...]" >&2
    exit 2
fi

bin=$1
shift
case $bin in
    /*) ;;
    *) bin=$(pwd)/$bin ;;
esac
if [ ! -x "$bin" ]; then
    echo "$0: $bin is not an executable file" >&2
    exit 2
fi
PRESENCED_BIN=$bin
export PRESENCED_BIN

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

# Node.js 20.7.0 is the first whose test runner fails the run when a top-level after() hook
# throws (nodejs/node#48913); the daemons' exit status, where sanitizer findings show, is
# checked in such hooks. An older node would report those failures and still exit 0.
command -v node >/dev/null || { echo "$0: node not found (scripts/deps test)" >&2; exit 2; }
if ! node -e '
    const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 20 || (a === 20 && b >= 7) ? 0 : 1);'; then
    echo "$0: node $(node --version) is too old: the tests need Node.js >= 20.7.0" >&2
    exit 2
fi

# Install the pinned client libraries only when needed (first run, or the lock file changed).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi

if [ $# -eq 0 ]; then
    set -- ./*.test.mjs
fi
# One test file at a time (each starts its own daemons). Node.js before 20.10 lacks the flag and
# runs files one at a time anyway on this two-core machine (availableParallelism() - 1).
node_help=$(node --help 2>/dev/null || true)
if [[ $node_help == *--test-concurrency* ]]; then
    exec node --test --test-concurrency=1 "$@"
fi
exec node --test "$@"
