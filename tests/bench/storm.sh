#!/usr/bin/env bash
# The reconnect storm: N identified users held on presenced (workers, store = redis,
# broadcast = scoped, offline_grace = G s) by C holders from loopback source addresses, plus a
# control group that stays connected. Every storm connection is dropped at once (the holders are
# killed: the kernel closes their sockets, as when a load balancer restarts) and new holders
# reconnect the same users as fast as they can. An observer (storm-observer.mjs, socket.io-client)
# subscribed to every user sees the events.
#
# Prints: the time until every user is online again in GET /v1/stats (usersOnline and sockets)
# and in the observer's view; the offline events the observer saw, split into justified (the
# user was back only after the grace window) and false (back within the grace window, or in the
# control group, never gone); Redis CPU during the storm and its slowest commands (SLOWLOG) and
# per-script totals (INFO commandstats); the peaks of Redis used_memory and of the workers' RSS;
# the slowest answer of a worker's /readyz (how long its loop was busy). Fails (exit 1) on any
# false offline or when the users are not all online again within --timeout.
#
# Usage: tests/bench/storm.sh [--n 100000] [--workers 6] [--holders 6] [--control 600]
#                             [--grace 5] [--lease 10] [--concurrency 1000] [--timeout 600]
#   --lease: instance_lease (s). A worker whose loop stays busy longer than two thirds of it
#   refreshes its lease late and is reaped by the others: a shorter lease shows that sooner.
#   --holders: holders of the storm users (and as many source addresses); the control group has
#   one holder per worker. --concurrency: connects in flight per holder; a connect that fails
#   (refused, or no answer within 20 s) is retried, up to 30 times.
#   PRESENCED_BIN, HOLDER_BIN: the daemon and the holder (default: built as scale.sh builds them)
#   STORM_OUT: a directory to keep the logs in (presenced.log, redis.log, events, samples)
# Needs redis-server, redis-cli, curl, python3, node and npm. Stops everything on exit.
set -euo pipefail

n=100000
workers=6
holders=6
control=600
grace=5
lease=10
concurrency=1000
timeout=600
while [ $# -gt 0 ]; do
    case $1 in
        --n) n=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --holders) holders=$2; shift 2 ;;
        --control) control=$2; shift 2 ;;
        --grace) grace=$2; shift 2 ;;
        --lease) lease=$2; shift 2 ;;
        --concurrency) concurrency=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=tests/bench/scale-lib.sh
. tests/bench/scale-lib.sh
if [ -n "${STORM_OUT:-}" ]; then tmp=$STORM_OUT; keep_tmp=1; mkdir -p "$tmp"; else tmp=$(mktemp -d); fi
samplers=()
cleanup() {
    local p
    for p in "${samplers[@]}"; do kill "$p" 2>/dev/null || true; done
    scale_cleanup
}
trap cleanup EXIT

scale_build
(cd tests/bench && { [ node_modules/.package-lock.json -nt package-lock.json ] ||
    npm ci --no-audit --no-fund >/dev/null; })
scale_redis
total=$((n + control))
# The observer receives an event for every user that comes and goes: its send queue must hold a
# storm's worth, or presenced drops it as a slow consumer. Each worker may hold every user twice
# for a while: the new connections can arrive before the old ones' closes are handled.
scale_presenced "$workers" "$total" 100 --set offline_grace="$grace" --set instance_lease="$lease" \
    --set max_subscriptions_per_socket=$((total + 1)) --set send_queue_max=$((2 * total + 1000))
scale_sources "$holders" "$workers" 1
storm_src=("${sources[@]}")
scale_sources "$workers" "$workers" 17
control_src=("${sources[@]}")
count_of() { echo $(($2 / $3 + ($1 < $2 % $3 ? 1 : 0))); } # share of item $1 of $2 over $3
stats() { curl -fs -m 60 "http://127.0.0.1:$port/v1/stats" || true; }
stat_field() { sed -n "s/.*\"cluster\":{[^}]*\"$1\":\([0-9]*\).*/\1/p"; }

spec=()
for ((h = 0; h < holders; h++)); do spec+=("s$h-:$(count_of "$h" "$n" "$holders")"); done
for ((h = 0; h < workers; h++)); do spec+=("c$h-:$(count_of "$h" "$control" "$workers")"); done
mkfifo "$tmp/in.observer"
node tests/bench/storm-observer.mjs "http://127.0.0.1:$port" "$(IFS=,; echo "${spec[*]}")" \
    <"$tmp/in.observer" >"$tmp/out.observer" 2>"$tmp/err.observer" &
pids+=($!)
obs_pid=$!
exec {obs_fd}>"$tmp/in.observer"
until grep -q '^subscribed' "$tmp/out.observer" 2>/dev/null; do
    kill -0 "$obs_pid" 2>/dev/null || { echo "observer exited: $(cat "$tmp/err.observer")" >&2; exit 1; }
    sleep 0.1
done
observe() {
    local lines
    lines=$(wc -l <"$tmp/out.observer")
    echo "$1" >&"$obs_fd"
    until [ "$(wc -l <"$tmp/out.observer")" -gt "$lines" ]; do sleep 0.05; done
    tail -n 1 "$tmp/out.observer"
}
view_online() { observe status | sed -n 's/.*"online":\([0-9]*\).*/\1/p'; }

# Every holder's users connected and ready (failed connects are retried, as clients would):
# exits when any still failed. Sets retried: connects retried, in all.
holders_ready() {
    local name
    retried=0
    for name in "$@"; do
        scale_holder_ready "$name"
        [ "$ready_failed" -eq 0 ] ||
            { echo "holder $name: $ready_failed failed: $(cat "$tmp/err.$name")" >&2; exit 1; }
        retried=$((retried + ready_retried))
    done
}
# Waits until GET /v1/stats counts every user online with one socket each (and the observer,
# identified too), and the observer's view has them all; sets stats_ms and view_ms (when each was
# first seen).
all_online() {
    local deadline=$(($(now_ms) + timeout * 1000)) s
    stats_ms=
    view_ms=
    while [ -z "$stats_ms" ] || [ -z "$view_ms" ]; do
        if [ -z "$stats_ms" ]; then
            s=$(stats)
            if [ "$(stat_field usersOnline <<<"$s")" = $((total + 1)) ] &&
                [ "$(stat_field sockets <<<"$s")" = $((total + 1)) ]; then stats_ms=$(now_ms); fi
        fi
        [ -n "$view_ms" ] || [ "$(view_online)" != "$total" ] || view_ms=$(now_ms)
        [ "$(now_ms)" -lt "$deadline" ] ||
            { echo "not all online after ${timeout} s: $(stats); view $(observe status)" >&2; exit 1; }
        sleep 0.1
    done
}

echo "presenced: workers=$workers store=redis broadcast=scoped offline_grace=${grace}s instance_lease=${lease}s"
echo "load: $n storm users from $holders holders, $control control users from $workers holders"
start=$(now_ms)
for ((h = 0; h < workers; h++)); do
    scale_holder "c$h" "$(count_of "$h" "$control" "$workers")" "c$h-" "${control_src[$h]}"
done
for ((h = 0; h < holders; h++)); do
    scale_holder "s$h" "$(count_of "$h" "$n" "$holders")" "s$h-" "${storm_src[$h]}" \
        --concurrency "$concurrency" --retry 30
done
names=()
for ((h = 0; h < holders; h++)); do names+=("s$h"); done
cnames=()
for ((h = 0; h < workers; h++)); do cnames+=("c$h"); done
holders_ready "${cnames[@]}" "${names[@]}"
all_online
echo "initial connect: all $total online in /v1/stats after $(((stats_ms - start))) ms," \
    "in the view after $(((view_ms - start))) ms"

# Redis: reset what the storm is measured by. Scripts slower than 1 ms are logged.
redis-cli -p "$rport" config set slowlog-log-slower-than 1000 >/dev/null
redis-cli -p "$rport" config set slowlog-max-len 4096 >/dev/null
redis-cli -p "$rport" slowlog reset >/dev/null
redis-cli -p "$rport" config resetstat >/dev/null
redis_cpu() { redis-cli -p "$rport" info cpu | awk -F: '/^used_cpu_(sys|user):/ {t += $2} END {printf "%.3f", t}'; }
redis_mem() { redis-cli -p "$rport" info memory | awk -F: '/^used_memory:/ {gsub("\r", ""); print $2}'; }
workers_rss() { local t=0 p; for p in "${wpids[@]}"; do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }
sample() {
    while :; do
        s=$(stats)
        echo "$(now_ms) $(stat_field usersOnline <<<"$s") $(stat_field sockets <<<"$s")" \
            "$(redis_cpu) $(redis_mem) $(workers_rss)"
        sleep 0.2
    done
}
# Each worker's /readyz round trip, 10 times a second: a worker busy in one long turn of its loop
# answers late.
probe() {
    while :; do
        echo "$(now_ms) $(curl -s -o /dev/null -m 30 -w '%{time_total}' "http://127.0.0.1:$1/readyz" || echo 30)"
        sleep 0.1
    done
}
cpu0=$(redis_cpu)
rss0=$(workers_rss)
mem0=$(redis_mem)
sample >"$tmp/samples" &
samplers=($!)
for ((i = 0; i < workers; i++)); do
    probe $((aport + i)) >"$tmp/probe.$i" &
    samplers+=($!)
done
sleep 1

# The storm: every storm connection dropped at once, then all reconnected.
kill_ms=$(now_ms)
for name in "${names[@]}"; do scale_holder_kill "$name"; done
for ((h = 0; h < holders; h++)); do
    scale_holder "s$h" "$(count_of "$h" "$n" "$holders")" "s$h-" "${storm_src[$h]}" \
        --concurrency "$concurrency" --retry 30
done
holders_ready "${names[@]}"
back_ms=$(now_ms)
storm_retried=$retried
all_online
cpu1=$(redis_cpu)
end_ms=$(now_ms)
# Offline events may still come late (a grace deadline that fires after the user came back).
sleep $((grace + 3))
for p in "${samplers[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
samplers=()

observe "dump $tmp/events" >/dev/null
for ((h = 0; h < holders; h++)); do
    a=$(scale_holder_ask "s$h" "times $tmp/times.s$h")
    [[ $a == *'"ok":true'* ]] || { echo "holder s$h: $a" >&2; exit 1; }
done
echo "observer: $(observe status)"
[ ! -s "$tmp/err.observer" ] || sed 's/^/  /' "$tmp/err.observer"
dropped=0
for name in "${cnames[@]}"; do
    a=$(scale_holder_ask "$name" count)
    dropped=$((dropped + $(sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' <<<"$a")))
done

echo "storm: $n connections dropped at $kill_ms; holders reconnected them all after" \
    "$((back_ms - kill_ms)) ms ($storm_retried connects failed and were retried)"
echo "all $total online again: in /v1/stats after $((stats_ms - kill_ms)) ms, in the observer's" \
    "view after $((view_ms - kill_ms)) ms"
awk -v c0="$cpu0" -v c1="$cpu1" -v t0="$kill_ms" -v t1="$end_ms" \
    'BEGIN {printf "redis CPU during the storm: %.1f s in %.1f s (%.0f%% of one core)\n", c1 - c0, (t1 - t0) / 1000, 100 * (c1 - c0) * 1000 / (t1 - t0)}'
python3 - "$tmp/samples" "$kill_ms" "$rss0" "$mem0" "$workers" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 6]
kill, rss0, mem0 = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
during = [r for r in rows if int(r[0]) >= kill]
# Redis CPU per second of wall time, at its busiest 1 s.
peak = 0.0
for i, r in enumerate(during):
    for s in during[i + 1:]:
        if int(s[0]) - int(r[0]) >= 1000:
            peak = max(peak, (float(s[3]) - float(r[3])) * 1000 / (int(s[0]) - int(r[0])))
            break
print(f"redis CPU at its busiest second: {100 * peak:.0f}% of one core")
print(f"redis used_memory: {mem0 / 2**20:.1f} MiB before, peak {max(int(r[4]) for r in rows) / 2**20:.1f} MiB")
print(f"workers' RSS (sum): {rss0 / 1024:.0f} MiB before, peak {max(int(r[5]) for r in rows) / 1024:.0f} MiB")
slow = []
for w in range(int(sys.argv[5])):
    probes = [l.split() for l in open(sys.argv[1].replace("samples", f"probe.{w}")) if len(l.split()) == 2]
    slow.append(max([1000 * float(p[1]) for p in probes if int(p[0]) >= kill] or [0]))
print("slowest /readyz answer during the storm, per worker (ms): " + " ".join(f"{s:.0f}" for s in slow))
EOF
echo "redis scripts during the storm (INFO commandstats):"
redis-cli -p "$rport" info commandstats | tr -d '\r' | grep -E '^cmdstat_(evalsha|eval|xread|xadd)' |
    sed 's/^/  /'
echo "redis slowlog (over 1 ms), slowest first:"
scale_slowlog 5
verdict=0
python3 - "$tmp" "$kill_ms" "$grace" "$holders" "$workers" <<'EOF' || verdict=$?
import sys
tmp, kill, grace, holders, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) * 1000, int(sys.argv[4]), int(sys.argv[5])
back = {}
for h in range(holders):
    for line in open(f"{tmp}/times.s{h}"):
        i, t = line.split()
        back[f"s{h}-{i}"] = int(t)
events = [l.split() for l in open(f"{tmp}/events")]
storm = [e for e in events if int(e[0]) >= kill]
offs = [e for e in storm if e[1] == "off"]
control = [e for e in offs if e[2].startswith("c")]
within = [e for e in offs if e[2] in back and back[e[2]] < kill + grace]
early = [e for e in offs if int(e[0]) < kill + grace]
justified = [e for e in offs if e[2] in back and back[e[2]] >= kill + grace]
after_back = [e for e in justified if int(e[0]) > back[e[2]]]
view = {}
for e in events:
    view[e[2]] = e[1] == "on"
missing = sum(1 for u in back if not view.get(u))
lat = sorted(t - kill for t in back.values())
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"reconnects: {len(lat)}; back after p50 {q(0.5)} ms, p99 {q(0.99)} ms, max {lat[-1]} ms;"
      f" {sum(1 for t in lat if t < grace)} within the {grace // 1000} s grace")
print(f"observer: {sum(1 for e in storm if e[1] == 'on')} online and {len(offs)} offline events since the drop")
print(f"  justified offline (back after the grace): {len(justified)}"
      f" ({len(after_back)} of them arrived after the user was back)")
print(f"  FALSE offline, user back within the grace: {len(within)}")
print(f"  FALSE offline, control user never gone: {len(control)}")
print(f"  offline before the grace ended: {len(early)}")
print(f"  storm users not online in the view at the end: {missing}")
bad = len(within) + len(control) + len(early) + missing
sys.exit(1 if bad else 0)
EOF
echo "control group: $dropped dropped"
warns=$(grep -cE 'level=(error|warn)' "$tmp/presenced.log" || true)
echo "presenced log: $warns warnings or errors"
grep -E 'level=(error|warn)' "$tmp/presenced.log" | head -8 || true
[ "$verdict" -eq 0 ] && [ "$dropped" -eq 0 ]
