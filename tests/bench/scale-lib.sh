# Shared by tests/bench/scale.sh and tests/bench/storm.sh (sourced, not run): builds the daemon
# and the C holder, starts redis-server and a presenced with workers, picks loopback source
# addresses per worker, starts holders and stops everything on exit.
#
# The caller sets `tmp` (a directory for logs and fifos) and `keep_tmp` (non-empty: keep it), and
# calls scale_build, scale_redis, scale_presenced, scale_sources, scale_holder... in that order.

pids=()                # every process started, stopped on exit
declare -A holder_fds=() # the write end of each holder's stdin fifo, by holder name
declare -A holder_pid=() # by holder name
pd_pid=

# presenced stops first, as `systemctl stop` would: each worker marks its users offline with one
# script. Closing the holders first would send Redis one close per connection at once instead.
scale_cleanup() {
    if [ -n "$pd_pid" ] && kill -0 "$pd_pid" 2>/dev/null; then
        kill -TERM "$pd_pid" 2>/dev/null || true
        for _ in $(seq 600); do kill -0 "$pd_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pd_pid" 2>/dev/null || true
    fi
    local fd
    for fd in "${holder_fds[@]}"; do eval "exec $fd>&-" 2>/dev/null || true; done
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${keep_tmp:-}" ] || rm -rf "$tmp"
}

# Sets pd_bin and holder_bin: PRESENCED_BIN / HOLDER_BIN, else RelWithDebInfo / Release builds
# in ./build and ./build-bench (as scripts/bench builds them).
scale_build() {
    if [ -n "${PRESENCED_BIN:-}" ]; then
        pd_bin=$PRESENCED_BIN
        # presenced takes PRESENCED_* variables for settings and refuses unknown ones.
        unset PRESENCED_BIN
    else
        cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRESENCED_TESTS=OFF >/dev/null
        cmake --build build -j"$(nproc)" >/dev/null
        pd_bin=$PWD/build/presenced
    fi
    if [ -n "${HOLDER_BIN:-}" ]; then
        holder_bin=$HOLDER_BIN
    else
        cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPRESENCED_TESTS=OFF \
            -DPRESENCED_BENCH=ON >/dev/null
        cmake --build build-bench --target presenced-bench-holder -j"$(nproc)" >/dev/null
        holder_bin=$PWD/build-bench/tests/bench/holder/presenced-bench-holder
    fi
}

# A TCP port below the ephemeral range (busy with client sockets) that nothing listens on, and
# the `span - 1` ports after it too (worker i's admin port is the admin port + i).
low_port() {
    local span=${1:-1} p i free
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % (12700 - span)))
        free=1
        for ((i = 0; i < span; i++)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null; then free=; break; fi
        done
        [ -z "$free" ] || { echo "$p"; return; }
    done
    echo "no free port" >&2
    exit 1
}

# Sets `worker` to the worker the kernel steers IPv4 client address $1 to among $2 workers
# (src/io/reuseport.c: reuseport_mix of the address, modulo the number of workers).
worker_of() {
    local IFS=. a b c d x
    read -r a b c d <<<"$1"
    x=$(((a << 24) | (b << 16) | (c << 8) | d))
    x=$(((x ^ (x >> 16)) & 0xffffffff))
    x=$(((x * 0x45d9f3b) & 0xffffffff))
    x=$(((x ^ (x >> 16)) & 0xffffffff))
    worker=$((x % $2))
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sum() { local t=0 v; for v in "$@"; do t=$((t + v)); done; echo "$t"; }
now_ms() { date +%s%3N; }

# Starts an empty, unsaved redis-server; sets rport.
scale_redis() {
    rport=$(low_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
        >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    redis_pid=$!
    # Redis stands for a service with a core of its own: among dozens of busy workers and
    # holders at its priority it would get a few percent of the CPU, answer after seconds and be
    # taken for dead. As root it runs 10 nice levels above them.
    [ "$(id -u)" -ne 0 ] || renice -n -10 -p "$redis_pid" >/dev/null
    for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
}

# Starts presenced with $1 workers on the Redis store, limits sized for $2 connections in all
# plus $3 percent, and any further `--set k=v` arguments; waits until every worker is ready. Sets
# port, aport, max_conn and wpids (the workers' pids).
scale_presenced() {
    local workers=$1 n=$2 headroom=$3 i
    shift 3
    port=$(low_port)
    aport=$(low_port "$workers")
    local per_worker=$(((n + workers - 1) / workers))
    # Each worker is its own process: max_connections and the fd limit count per worker.
    max_conn=$((per_worker + per_worker * headroom / 100 + 100))
    "$pd_bin" --listen "127.0.0.1:$port" --store redis --redis "redis://127.0.0.1:$rport" \
        --set workers="$workers" --set broadcast=scoped --set admin_listen="127.0.0.1:$aport" \
        --set max_connections="$max_conn" --set max_connections_per_ip=1000000 \
        --set max_sessions_per_ip=1000000 \
        --set rate_limit=1000000 --set rate_burst=1000000 --set log_level=info "$@" \
        2>"$tmp/presenced.log" &
    pd_pid=$!
    for ((i = 0; i < workers; i++)); do
        for _ in $(seq 600); do
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
    [ "${#wpids[@]}" -eq "$workers" ] ||
        { echo "expected $workers workers, found ${#wpids[@]}" >&2; exit 1; }
}

# Sets sources: $1 loopback addresses, source h hashing to worker h % $2. The kernel sends every
# connection of one client address to one worker, so this spreads holders evenly; one address
# has ~64,000 ports towards one server port (the holder binds them in turn), so each holder has
# its own. The addresses are 127.0.x.y with x from $3 (default 1): callers that need two
# disjoint sets pass different x.
scale_sources() {
    local holders=$1 workers=$2 x=${3:-1} x2 y h a worker
    declare -A taken=()
    sources=()
    for ((h = 0; h < holders; h++)); do
        a=
        for ((x2 = x; x2 < x + 16; x2++)); do
            for ((y = 1; y < 255; y++)); do
                [ -z "${taken[127.0.$x2.$y]:-}" ] || continue
                worker_of "127.0.$x2.$y" "$workers"
                if [ "$worker" -eq $((h % workers)) ]; then a=127.0.$x2.$y; break; fi
            done
            [ -z "$a" ] || break
        done
        [ -n "$a" ] || { echo "no source address for worker $((h % workers))" >&2; exit 1; }
        taken[$a]=1
        sources+=("$a")
    done
}

# Starts holder NAME: COUNT connections of users PREFIX0.. from SOURCE, with extra holder
# arguments after. Its stdin is a fifo kept open (holder_fds[NAME]); output in $tmp/out.NAME.
# Holders run 5 nice levels below the daemon and Redis: clients are other machines in real life,
# and on a small host a dozen busy holders would otherwise starve Redis of CPU for seconds.
scale_holder() {
    local name=$1 count=$2 prefix=$3 source=$4 fd
    shift 4
    rm -f "$tmp/in.$name"
    mkfifo "$tmp/in.$name"
    nice -n 5 "$holder_bin" "http://127.0.0.1:$port" "$count" "$prefix" --source "$source" "$@" \
        <"$tmp/in.$name" >"$tmp/out.$name" 2>"$tmp/err.$name" &
    pids+=($!)
    holder_pid[$name]=$!
    exec {fd}>"$tmp/in.$name"
    holder_fds[$name]=$fd
}

# Waits until holder NAME printed "ready"; sets ready_connected, ready_failed and ready_retried.
scale_holder_ready() {
    local name=$1
    until grep -q '^ready' "$tmp/out.$name" 2>/dev/null; do
        kill -0 "${holder_pid[$name]}" 2>/dev/null ||
            { echo "holder $name exited: $(cat "$tmp/err.$name")" >&2; exit 1; }
        sleep 0.1
    done
    read -r _ ready_connected ready_failed ready_retried < <(grep '^ready' "$tmp/out.$name")
}

# Sends COMMAND to holder NAME and prints its answer (the next line of its output).
scale_holder_ask() {
    local name=$1 lines
    lines=$(wc -l <"$tmp/out.$name")
    echo "$2" >&"${holder_fds[$name]}"
    until [ "$(wc -l <"$tmp/out.$name")" -gt "$lines" ]; do sleep 0.05; done
    tail -n 1 "$tmp/out.$name"
}

# Ends holder NAME at once (SIGKILL: the kernel closes its sockets, as a crashed client host or
# a restarting load balancer would) and forgets it.
scale_holder_kill() {
    local name=$1
    kill -KILL "${holder_pid[$name]}" 2>/dev/null || true
    wait "${holder_pid[$name]}" 2>/dev/null || true
    eval "exec ${holder_fds[$name]}>&-" 2>/dev/null || true
    unset "holder_fds[$name]" "holder_pid[$name]"
}

# Redis's slowest commands (SLOWLOG, slowest first, $1 of them): what kept it busy.
scale_slowlog() {
    redis-cli -p "$rport" --json slowlog get 1024 | python3 -c '
import json, sys
top = int(sys.argv[1])
for e in sorted(json.load(sys.stdin), key=lambda e: -e[2])[:top]:
    print(f"  {e[2] / 1000:.1f} ms  " + " ".join(str(a) for a in e[3])[:100])' "$1"
}

# TCP sockets in use and the pages of TCP buffer memory (/proc/net/sockstat): "inuse pages".
scale_sockstat() { awk '/^TCP:/ {for (i = 2; i < NF; i += 2) v[$i] = $(i + 1); print v["inuse"], v["mem"]}' /proc/net/sockstat; }
# The kernel's slab memory (kB): socket, inode and dentry objects of every connection live there.
scale_slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }

# Checks that $1 connections fit $2 workers and $3 holders on this host: each worker and each
# holder is one process under the descriptor limit, each holder one source address with the
# 64,512 ports (1024-65535) towards one server port. Prints what would stop the run and exits.
scale_limits() {
    local n=$1 workers=$2 holders=$3 fds lo hi per_w per_h bad=
    fds=$(ulimit -Hn)
    lo=1024 hi=65535 # the holder binds its ports itself (holder.c: bind_source)
    per_w=$(((n + workers - 1) / workers))
    per_h=$(((n + holders - 1) / holders))
    if [ "$workers" -gt 64 ]; then echo "workers: at most 64" >&2; bad=1; fi
    if [ "$fds" != unlimited ] && [ $((per_w + per_w / 10 + 200)) -gt "$fds" ]; then
        echo "$per_w connections per worker (+10% and 200 spare) exceed the descriptor limit $fds: use --workers $(((n * 11 / 10 + fds - 201) / (fds - 200)))" >&2
        bad=1
    fi
    if [ "$fds" != unlimited ] && [ $((per_h + 50)) -gt "$fds" ]; then
        echo "$per_h connections per holder exceed the descriptor limit $fds: use more --holders" >&2
        bad=1
    fi
    if [ "$per_h" -gt $((hi - lo)) ]; then
        echo "$per_h connections per holder exceed the $((hi - lo)) ports of one source address: use more --holders" >&2
        bad=1
    fi
    local max open
    read -r max </proc/sys/fs/file-max
    open=$(awk '{print $1}' /proc/sys/fs/file-nr)
    if [ $((open + 2 * n + 10000)) -gt "$max" ]; then
        echo "fs.file-max $max is too low for 2 x $n sockets (both ends are on this host): see --sysctl" >&2
        bad=1
    fi
    [ -z "$bad" ] || exit 1
}

# Raises the host's limits for $1 connections with both ends on this host (root only; each
# setting is raised, never lowered, and printed). docs/operations.md lists the same for a
# production host, where only the server's end counts.
scale_sysctl() {
    local n=$1 k want cur
    raise() {
        k=$1 want=$2
        cur=$(sysctl -n "$k" 2>/dev/null) || { echo "sysctl $k: not available here"; return; }
        cur=${cur%%[[:space:]]*}
        if [ "$cur" -lt "$want" ]; then
            sysctl -q -w "$k=$want" 2>/dev/null && echo "sysctl $k: $cur -> $want" ||
                echo "sysctl $k: $cur, could not raise it to $want"
        else
            echo "sysctl $k: $cur (enough)"
        fi
    }
    raise fs.file-max $((2 * n + 200000))
    raise fs.nr_open 1048576
    raise net.core.somaxconn 65535
    raise net.ipv4.tcp_max_syn_backlog 65535
    raise net.core.netdev_max_backlog 65535
    [ ! -e /proc/sys/net/netfilter/nf_conntrack_max ] || raise net.netfilter.nf_conntrack_max $((2 * n + 100000))
    # tcp_mem is in pages (min pressure max): an idle connection holds no buffer pages, but
    # connect bursts and broadcasts do; pressure starts at 2 pages per socket here.
    cur=$(sysctl -n net.ipv4.tcp_mem 2>/dev/null | awk '{print $3}') || cur=
    want=$((4 * n))
    if [ -z "$cur" ]; then
        echo "sysctl net.ipv4.tcp_mem: not in this network namespace (the host's applies)"
    elif [ "$cur" -lt "$want" ]; then
        sysctl -q -w net.ipv4.tcp_mem="$((2 * n)) $((3 * n)) $want" 2>/dev/null &&
            echo "sysctl net.ipv4.tcp_mem: -> $((2 * n)) $((3 * n)) $want" ||
            echo "sysctl net.ipv4.tcp_mem: could not raise it"
    else
        echo "sysctl net.ipv4.tcp_mem: $(sysctl -n net.ipv4.tcp_mem | tr '\t' ' ') (enough)"
    fi
}

# Runs the calling script again ($2, with arguments after it) in a network namespace of its own
# whose established-connection table has a bucket for each of the 2 x $1 sockets, rounded up to
# a power of two (root; Linux 6.1 or later). Does not return when it could start it.
scale_netns() {
    local n=$1 script=$2 want=1 old
    shift 2
    while [ "$want" -lt $((2 * n)) ]; do want=$((want * 2)); done
    old=$(sysctl -n net.ipv4.tcp_child_ehash_entries 2>/dev/null) ||
        { echo "--netns: net.ipv4.tcp_child_ehash_entries is not available (Linux 6.1 or later)" >&2; exit 1; }
    sysctl -q -w net.ipv4.tcp_child_ehash_entries="$want" ||
        { echo "--netns: cannot set net.ipv4.tcp_child_ehash_entries (root only)" >&2; exit 1; }
    echo "network namespace of its own: $want buckets of established connections"
    local rc=0
    SCALE_IN_NETNS=1 unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$script" "$@" || rc=$?
    sysctl -q -w net.ipv4.tcp_child_ehash_entries="$old" || true
    exit "$rc"
}
