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

# Install the pinned client libraries only when needed (first run, or the lock file changed).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund
    touch node_modules
fi

if [ $# -eq 0 ]; then
    set -- ./*.test.mjs
fi
# One test file at a time (each starts its own daemons). Older Node.js (18) lacks the flag.
node_help=$(node --help 2>/dev/null || true)
if [[ $node_help == *--test-concurrency* ]]; then
    exec node --test --test-concurrency=1 "$@"
fi
exec node --test "$@"
