#!/usr/bin/env bash
# Runs the store contract (store_contract.c) against the memory store and against the Redis
# store, on a throwaway Redis set-up started here (redis-topology.sh: free ports, a temp dir) and
# stopped on exit: one redis-server, a Sentinel set-up or a Redis Cluster. The binary is handed
# the set-up's directory and script, to put its fault proxies in front of every data node and to
# stop, restart and flush them.
# Usage: tests/integration/store_contract.sh <path-to-store_contract> [memory|redis|sentinel|cluster|both]
#        (default both: memory and redis; extra arguments after the mode go to the binary, e.g.
#        --filter rooms)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
    echo "usage: $0 <path-to-store_contract> [memory|redis|sentinel|cluster|both] [args...]" >&2
    exit 2
fi
bin=$1
shift
mode=${1:-both}
[ $# -gt 0 ] && shift
case $mode in
    memory | redis | sentinel | cluster | both) ;;
    *)
        echo "$0: mode must be memory, redis, sentinel, cluster or both, not '$mode'" >&2
        exit 2
        ;;
esac
if [ ! -x "$bin" ]; then
    echo "$0: $bin is not an executable file" >&2
    exit 2
fi

status=0
if [ "$mode" = memory ] || [ "$mode" = both ]; then
    "$bin" --store memory "$@" || status=$?
fi
[ "$mode" = memory ] && exit "$status"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/store_contract.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    "$here/redis-topology.sh" stop "$tmp" || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

topology=single
[ "$mode" = sentinel ] || [ "$mode" = cluster ] && topology=$mode
# No failover here (redis_failover is about those): the sentinels and the cluster take a node
# for dead only after a minute, longer than any stall, cut or restart a scenario makes.
url=$(REDIS_TOPOLOGY_DOWN_MS=60000 "$here/redis-topology.sh" start "$topology" "$tmp")
"$bin" --store redis --redis "$url" --topology "$topology" \
    --control "$here/redis-topology.sh" "$tmp" "$@" || status=$?
exit "$status"
