#!/usr/bin/env bash
# N identified WebSocket connections (100,000 by default, up to 1,000,000) on one machine through
# one port: presenced with workers (one SO_REUSEPORT group, each worker its own process and fd
# budget) and store = redis, loaded by C holders (tests/bench/holder), each from its own loopback
# source address (one address has only ~64,000 ports towards one server port).
#
# The kernel sends every connection of one client address to one worker (hash of the address), so
# a holder's connections all land on one worker: holder h gets a source address 127.0.x.y that
# hashes to worker h % workers (the first such), which spreads the holders evenly.
#
# Prints: connected/failed per holder, the connect wall time and rate, the sum of the workers' RSS
# growth and bytes per connection, the kernel's memory per connection (slab and TCP buffer pages,
# both ends of each connection being on this host), Redis used_memory and bytes per user, the
# workers' CPU while idle (held at the default ping interval), then a count from every holder
# (none may have dropped).
#
# Usage: tests/bench/scale.sh [--n 100000] [--workers W] [--holders H] [--idle 30] [--sysctl]
#                             [--retry 20] [--concurrency 200] [--set KEY=VALUE ...]
#   --workers, --holders: default max(6, N / 16,000 rounded up), so that each process stays
#   under a 20,000-descriptor limit. --idle: seconds held before the count (300 for the
#   five-minute hold). --sysctl: raise the host's limits first (root; see scale_sysctl in
#   scale-lib.sh and docs/operations.md); the script checks them either way and says what is
#   short. --retry: a connect that fails or gets no answer in 20 s is made again, as a client
#   would, up to this many rounds (0: counted as failed at once). --concurrency: connects in
#   flight per holder (a million on two cores: 40, since more only queue up behind what the
#   workers can answer and time out into retries). --set: a presenced setting on
#   top of the script's (repeatable), e.g. --set instance_lease=30.
#   PRESENCED_BIN: the daemon to run (default: a RelWithDebInfo build in ./build)
#   HOLDER_BIN:    the holder (default: built in ./build-bench, as scripts/bench does)
#   SCALE_OUT:     a directory to keep the logs in (presenced.log, redis.log, the holders' output)
# Needs redis-server, redis-cli and curl. Starts everything on ports below 32768 and stops it all
# on exit.
set -euo pipefail

argv=("$@")
n=100000
workers=
holders=
idle=30
sysctl=
netns=
retry=20
concurrency=200
sets=()
while [ $# -gt 0 ]; do
    case $1 in
        --n) n=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --holders) holders=$2; shift 2 ;;
        --idle) idle=$2; shift 2 ;;
        --sysctl) sysctl=1; shift ;;
        --retry) retry=$2; shift 2 ;;
        --concurrency) concurrency=$2; shift 2 ;;
        --set) sets+=(--set "$2"); shift 2 ;;
        --netns) netns=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

auto=$(((n + 15999) / 16000))
[ "$auto" -ge 6 ] || auto=6
workers=${workers:-$auto}
holders=${holders:-$auto}

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=tests/bench/scale-lib.sh
. tests/bench/scale-lib.sh
if [ -n "${SCALE_OUT:-}" ]; then tmp=$SCALE_OUT; keep_tmp=1; mkdir -p "$tmp"; else tmp=$(mktemp -d); fi
trap scale_cleanup EXIT

if [ -n "$netns" ] && [ -z "${SCALE_IN_NETNS:-}" ]; then
    # Host-wide limits are raised here; the namespace's own (somaxconn...) inside it.
    if [ -n "$sysctl" ]; then scale_sysctl "$n"; fi
    scale_netns "$n" "$root/tests/bench/scale.sh" "${argv[@]}"
fi
if [ -n "$sysctl" ]; then scale_sysctl "$n"; fi
scale_limits "$n" "$workers" "$holders"
scale_build
scale_redis
scale_presenced "$workers" "$n" 10 "${sets[@]}"
rss_before=0
for p in "${wpids[@]}"; do rss_before=$((rss_before + $(rss_kb "$p"))); done
scale_sources "$holders" "$workers"
sock0=$(scale_sockstat)
slab0=$(scale_slab_kb)

echo "presenced: workers=$workers store=redis broadcast=scoped max_connections=$max_conn per worker"
echo "load: $n identified WebSocket connections from $holders holders"
start=$(date +%s.%N)
for ((h = 0; h < holders; h++)); do
    scale_holder "$h" $((n / holders + (h < n % holders ? 1 : 0))) "s$h-" "${sources[$h]}" \
        --retry "$retry" --concurrency "$concurrency"
done
for ((h = 0; h < holders; h++)); do scale_holder_ready "$h"; done
end=$(date +%s.%N)
connected=0
failed=0
retried=0
for ((h = 0; h < holders; h++)); do
    read -r _ c f r < <(grep '^ready' "$tmp/out.$h")
    connected=$((connected + c))
    failed=$((failed + f))
    retried=$((retried + ${r:-0}))
    worker_of "${sources[$h]}" "$workers"
    printf 'holder %d  source %-13s  worker %d  connected %6d  failed %d\n' "$h" "${sources[$h]}" \
        "$worker" "$c" "$f"
    [ "$f" -eq 0 ] || sed 's/^/    /' "$tmp/err.$h"
done
wall=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}')
echo "connected $connected, failed $failed in ${wall} s: $(awk -v c="$connected" -v w="$wall" \
    'BEGIN {printf "%.0f", c / w}') connections/s ($retried connects retried)"

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
read -r inuse0 pages0 <<<"$sock0"
read -r inuse1 pages1 <<<"$(scale_sockstat)"
slab1=$(scale_slab_kb)
echo "kernel: TCP sockets in use $inuse0 -> $inuse1, buffer pages $pages0 -> $pages1, slab" \
    "$((slab0 / 1024)) -> $((slab1 / 1024)) MiB: $(awk -v s="$((slab1 - slab0))" \
    -v p="$((pages1 - pages0))" -v c="$connected" 'BEGIN {printf "%.0f", c ? (s * 1024 + p * 4096) / c : 0}')" \
    "bytes per connection (both ends; the server's end is about half)"
rmem=$(redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/ {gsub("\r", ""); print $2}')
echo "redis used_memory: $((rmem / 1048576)) MiB ($(awk -v m="$rmem" -v c="$connected" \
    'BEGIN {printf "%.0f", c ? m / c : 0}') bytes per user, each with one socket)"

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
for ((h = 0; h < holders; h++)); do
    line=$(scale_holder_ask "$h" count)
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
scale_slowlog 5

[ "$dropped" -eq 0 ] && [ "$failed" -eq 0 ]
