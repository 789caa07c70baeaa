#!/usr/bin/env bash
# 100,000 identified WebSocket connections on one machine through one port: presenced with
# workers = 6 (one SO_REUSEPORT group, each worker its own process and fd budget) and store =
# redis, loaded by several C holders (tests/bench/holder), each from its own loopback source
# address (one address has only ~28,000 ephemeral ports towards one server port).
#
# The kernel sends every connection of one client address to one worker (hash of the address), so
# a holder's connections all land on one worker: holder h gets a source address 127.0.1.x that
# hashes to worker h % workers (the first such x), which spreads the holders evenly.
#
# Prints: connected/failed per holder, the connect wall time and rate, the sum of the workers' RSS
# growth and bytes per connection, Redis used_memory, the workers' CPU while 30 s idle, then a
# count from every holder (none may have dropped).
#
# Usage: tests/bench/scale.sh [--n 100000] [--workers 6] [--holders 6] [--idle 30]
#   PRESENCED_BIN: the daemon to run (default: a RelWithDebInfo build in ./build)
#   HOLDER_BIN:    the holder (default: built in ./build-bench, as scripts/bench does)
#   SCALE_OUT:     a directory to keep the logs in (presenced.log, redis.log, the holders' output)
# Needs redis-server, redis-cli and curl. Starts everything on ports below 32768 and stops it all
# on exit.
set -euo pipefail

n=100000
workers=6
holders=6
idle=30
while [ $# -gt 0 ]; do
    case $1 in
        --n) n=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --holders) holders=$2; shift 2 ;;
        --idle) idle=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if [ -n "${PRESENCED_BIN:-}" ]; then
    pd_bin=$PRESENCED_BIN
    # presenced takes PRESENCED_* variables for settings and refuses unknown ones.
    unset PRESENCED_BIN
else
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRESENCED_TESTS=OFF >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
    pd_bin=$root/build/presenced
fi
if [ -n "${HOLDER_BIN:-}" ]; then
    holder_bin=$HOLDER_BIN
else
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPRESENCED_TESTS=OFF \
        -DPRESENCED_BENCH=ON >/dev/null
    cmake --build build-bench --target presenced-bench-holder -j"$(nproc)" >/dev/null
    holder_bin=$root/build-bench/tests/bench/holder/presenced-bench-holder
fi

if [ -n "${SCALE_OUT:-}" ]; then tmp=$SCALE_OUT; mkdir -p "$tmp"; else tmp=$(mktemp -d); fi
pids=()
holder_fds=()
pd_pid=
# presenced stops first, as `systemctl stop` would: each worker marks its users offline with one
# script. Closing the holders first would send Redis 100,000 separate closes at once instead.
cleanup() {
    if [ -n "$pd_pid" ] && kill -0 "$pd_pid" 2>/dev/null; then
        kill -TERM "$pd_pid" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$pd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pd_pid" 2>/dev/null || true
    fi
    for fd in "${holder_fds[@]}"; do eval "exec $fd>&-" 2>/dev/null || true; done
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${SCALE_OUT:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

# A TCP port below the ephemeral range (32768-60999 is busy with client sockets) that nothing
# listens on.
low_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "no free port" >&2
    exit 1
}

# The worker the kernel steers an IPv4 client address to (src/io/reuseport.c: reuseport_mix of
# the address, modulo the number of workers).
worker_of() {
    local IFS=. a b c d x
    read -r a b c d <<<"$1"
    x=$(((a << 24) | (b << 16) | (c << 8) | d))
    x=$(((x ^ (x >> 16)) & 0xffffffff))
    x=$(((x * 0x45d9f3b) & 0xffffffff))
    x=$(((x ^ (x >> 16)) & 0xffffffff))
    echo $((x % $2))
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sum() { local t=0 v; for v in "$@"; do t=$((t + v)); done; echo "$t"; }

rport=$(low_port)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done

port=$(low_port)
aport=$(low_port)
per_worker=$(((n + workers - 1) / workers))
# Each worker is its own process: max_connections and the fd limit count per worker.
max_conn=$((per_worker + per_worker / 10 + 100))
"$pd_bin" --listen "127.0.0.1:$port" --store redis --redis "redis://127.0.0.1:$rport" \
    --set workers="$workers" --set broadcast=scoped --set admin_listen="127.0.0.1:$aport" \
    --set max_connections="$max_conn" --set max_connections_per_ip=1000000 \
    --set max_sessions_per_ip=1000000 \
    --set rate_limit=1000000 --set rate_burst=1000000 --set log_level=info \
    2>"$tmp/presenced.log" &
pd_pid=$!
for i in $(seq 0 $((workers - 1))); do
    for _ in $(seq 200); do
        curl -fs "http://127.0.0.1:$((aport + i))/readyz" >/dev/null 2>&1 && break
        sleep 0.05
    done
    curl -fs "http://127.0.0.1:$((aport + i))/readyz" >/dev/null ||
        { echo "worker $i is not ready" >&2; cat "$tmp/presenced.log" >&2; exit 1; }
done
if [ "$workers" -eq 1 ]; then
    wpids=("$pd_pid") # no supervisor: the process started serves
else
    mapfile -t wpids < <(ps --ppid "$pd_pid" -o pid= | tr -d ' ')
fi
[ "${#wpids[@]}" -eq "$workers" ] || { echo "expected $workers workers, found ${#wpids[@]}" >&2; exit 1; }
rss_before=0
for p in "${wpids[@]}"; do rss_before=$((rss_before + $(rss_kb "$p"))); done

# One source address per holder, hashing to worker h % workers.
sources=()
declare -A taken=()
for h in $(seq 0 $((holders - 1))); do
    want=$((h % workers))
    for x in $(seq 1 254); do
        a=127.0.1.$x
        if [ -z "${taken[$a]:-}" ] && [ "$(worker_of "$a" "$workers")" -eq "$want" ]; then
            sources+=("$a")
            taken[$a]=1
            break
        fi
    done
done

echo "presenced: workers=$workers store=redis broadcast=scoped max_connections=$max_conn per worker"
echo "load: $n identified WebSocket connections from $holders holders"
start=$(date +%s.%N)
for h in $(seq 0 $((holders - 1))); do
    count=$((n / holders + (h < n % holders ? 1 : 0)))
    rm -f "$tmp/in$h"
    mkfifo "$tmp/in$h"
    "$holder_bin" "http://127.0.0.1:$port" "$count" "s$h-" --source "${sources[$h]}" \
        <"$tmp/in$h" >"$tmp/out$h" 2>"$tmp/err$h" &
    pids+=($!)
    exec {fd}>"$tmp/in$h"
    holder_fds+=("$fd")
done
for h in $(seq 0 $((holders - 1))); do
    until grep -q '^ready' "$tmp/out$h" 2>/dev/null; do
        kill -0 "${pids[$((h + 1))]}" 2>/dev/null ||
            { echo "holder $h exited: $(cat "$tmp/err$h")" >&2; exit 1; }
        sleep 0.1
    done
done
end=$(date +%s.%N)
connected=0
failed=0
for h in $(seq 0 $((holders - 1))); do
    read -r _ c f < <(grep '^ready' "$tmp/out$h")
    connected=$((connected + c))
    failed=$((failed + f))
    printf 'holder %d  source %-11s  worker %d  connected %6d  failed %d\n' "$h" "${sources[$h]}" \
        "$(worker_of "${sources[$h]}" "$workers")" "$c" "$f"
    [ "$f" -eq 0 ] || sed 's/^/    /' "$tmp/err$h"
done
wall=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}')
echo "connected $connected, failed $failed in ${wall} s: $(awk -v c="$connected" -v w="$wall" \
    'BEGIN {printf "%.0f", c / w}') connections/s"

sleep 3
rss_after=0
per=()
for p in "${wpids[@]}"; do
    r=$(rss_kb "$p")
    per+=("$((r / 1024))")
    rss_after=$((rss_after + r))
done
grow=$((rss_after - rss_before))
echo "workers' RSS: $((rss_before / 1024)) MiB before, $((rss_after / 1024)) MiB after" \
    "(per worker, MiB: ${per[*]}); growth $((grow / 1024)) MiB =" \
    "$(awk -v g="$grow" -v c="$connected" 'BEGIN {printf "%.0f", c ? g * 1024 / c : 0}') bytes per connection"
echo "redis used_memory: $(redis-cli -p "$rport" info memory | awk -F: '/^used_memory_human:/ {gsub("\r", ""); print $2}')" \
    "($(redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/ {gsub("\r", ""); print $2}') bytes)"

mapfile -t t0 < <(for p in "${wpids[@]}"; do cpu_ticks "$p"; done)
sleep "$idle"
mapfile -t t1 < <(for p in "${wpids[@]}"; do cpu_ticks "$p"; done)
hz=$(getconf CLK_TCK)
cpus=()
for i in "${!wpids[@]}"; do
    cpus+=("$(awk -v d="$((t1[i] - t0[i]))" -v hz="$hz" -v s="$idle" 'BEGIN {printf "%.1f%%", 100 * d / hz / s}')")
done
echo "workers' CPU while idle for ${idle} s: $(awk -v d="$(($(sum "${t1[@]}") - $(sum "${t0[@]}")))" \
    -v hz="$hz" -v s="$idle" 'BEGIN {printf "%.1f%%", 100 * d / hz / s}') of one core in all" \
    "(per worker: ${cpus[*]})"

dropped=0
still=0
for h in $(seq 0 $((holders - 1))); do
    lines=$(wc -l <"$tmp/out$h")
    echo count >&"${holder_fds[$h]}"
    until [ "$(wc -l <"$tmp/out$h")" -gt "$lines" ]; do sleep 0.05; done
    line=$(tail -n 1 "$tmp/out$h")
    echo "holder $h count: $line"
    d=$(sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' <<<"$line")
    c=$(sed -n 's/.*"connected":\([0-9]*\).*/\1/p' <<<"$line")
    dropped=$((dropped + d))
    still=$((still + c - d))
done
echo "after ${idle} s idle: $still connections open, $dropped dropped"
warns=$(grep -cE 'level=(error|warn)' "$tmp/presenced.log" || true)
echo "presenced log: $warns warnings or errors"
grep -E 'level=(error|warn)|msg="reaped' "$tmp/presenced.log" | head -12 || true
# Redis logs commands slower than 10 ms: what kept it busy, if anything did.
echo "redis slowlog (over 10 ms), slowest first:"
redis-cli -p "$rport" --json slowlog get 128 | python3 -c '
import json, sys
for e in sorted(json.load(sys.stdin), key=lambda e: -e[2])[:5]:
    print(f"  {e[2] / 1000:.0f} ms  " + " ".join(str(a) for a in e[3])[:100])'

[ "$dropped" -eq 0 ] && [ "$failed" -eq 0 ]
