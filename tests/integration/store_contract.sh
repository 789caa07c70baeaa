#!/usr/bin/env bash
# Runs the store contract (store_contract.c) against the memory store and against the Redis
# store, on a throwaway redis-server started here on a free port in a temp dir and stopped on
# exit.
# Usage: tests/integration/store_contract.sh <path-to-store_contract> [memory|redis|both]
#        (default both; extra arguments after the mode go to the binary, e.g. --filter rooms)
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 <path-to-store_contract> [memory|redis|both] [args...]" >&2
    exit 2
fi
bin=$1
shift
mode=${1:-both}
[ $# -gt 0 ] && shift
case $mode in
    memory | redis | both) ;;
    *)
        echo "$0: mode must be memory, redis or both, not '$mode'" >&2
        exit 2
        ;;
esac
if [ ! -x "$bin" ]; then
    echo "$0: $bin is not an executable file" >&2
    exit 2
fi

status=0
if [ "$mode" != redis ]; then
    "$bin" --store memory "$@" || status=$?
fi
[ "$mode" = memory ] && exit "$status"

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null; then
        echo "$0: $tool not found (apt-get install redis-server)" >&2
        exit 2
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/store_contract.XXXXXX")
redis_pid=
# shellcheck disable=SC2317 # called by the trap
stop_redis() {
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap stop_redis EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nobody listens on may still be taken between the check and the bind: retry a few
# times with another one if the server does not come up.
port=
for _ in 1 2 3 4 5 6 7 8 9 10; do
    candidate=$((20000 + RANDOM % 40000))
    if (: </dev/tcp/127.0.0.1/"$candidate") 2>/dev/null; then
        continue
    fi
    redis-server --port "$candidate" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    for _ in $(seq 50); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$candidate" ping 2>/dev/null)" = PONG ]; then
            port=$candidate
            break
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] && break
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=
done
if [ -z "$port" ]; then
    echo "$0: could not start redis-server; its last log:" >&2
    cat "$tmp/redis.log" >&2 || true
    exit 1
fi

"$bin" --store redis --redis "redis://127.0.0.1:$port" "$@" || status=$?
exit "$status"
