#!/usr/bin/env bash
# Starts and stops the Redis set-ups the tests run against, from Debian's redis-server (Sentinel is
# the same program, run with --sentinel: what the redis-sentinel package starts), on 127.0.0.1 and
# free ports, without persistence, in a directory of the caller's:
#   single    one redis-server;
#   sentinel  a primary, two replicas and three sentinels watching it as "presenced";
#   cluster   a Redis Cluster of three primaries (the 16384 slots split evenly) with one replica
#             each.
# Failure detection is fast (2 s, REDIS_TOPOLOGY_DOWN_MS) so that failover tests take seconds.
#
# Usage: redis-topology.sh start single|sentinel|cluster DIR
#            prints the redis URL for presenced on stdout once the set-up is ready, and writes
#            DIR/topology.json: {"kind", "url", "nodes": [{"role", "port", "pid"}...]} (roles:
#            primary, replica, sentinel); DIR/<port>/ holds each process's files and log.
#        redis-topology.sh down DIR [--save]
#            stops the data nodes, leaving the sentinels up: Redis is down; with --save each
#            writes its data first (SHUTDOWN SAVE), else it is gone (SIGTERM, its dump removed);
#        redis-topology.sh up DIR [--empty]
#            starts the data nodes again on their ports, with what down --save kept (--empty: not
#            even that; a cluster node keeps its nodes.conf, so the cluster comes back with its
#            slots), and waits until ready;
#        redis-topology.sh config DIR PORT NAME VALUE [NAME VALUE...]
#            CONFIG SET on the data node at PORT, kept when up starts it again;
#        redis-topology.sh stop DIR
#            stops every process the start recorded (SIGTERM, then SIGKILL) and keeps DIR;
#        redis-topology.sh run single|sentinel|cluster COMMAND [ARGS...]
#            starts a set-up in a temporary directory, runs COMMAND with REDIS_TOPOLOGY_URL and
#            REDIS_TOPOLOGY_DIR set, stops the set-up and exits with COMMAND's status.
# Exits non-zero, with the logs of what did not come up on stderr, if the set-up is not ready
# within 20 s; it then stops what it started.
set -euo pipefail

MASTER=presenced
DOWN_MS=${REDIS_TOPOLOGY_DOWN_MS:-2000}
DEADLINE_S=20

die() {
    echo "redis-topology: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null || die "$1 not found (apt-get install redis-server)"
}

cli() { # port, command...
    local port=$1
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# A port nobody listens on (nor on port+10000, a cluster node's bus port), not yet taken by
# this start, below the kernel's ephemeral range (32768 up) so that no outgoing connection holds
# it. Another process may still take it before we bind: start then fails and is retried.
taken=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((10000 + RANDOM % 12768))
        [[ $taken == *" $p "* || $taken == *" $((p + 10000)) "* ]] && continue
        if (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null || (: </dev/tcp/127.0.0.1/$((p + 10000))) 2>/dev/null; then
            continue
        fi
        taken+="$p $((p + 10000)) "
        echo "$p"
        return 0
    done
    die "no free port"
}

# Starts redis-server with `args` on `port`; its arguments are kept in DIR/<port>/args for up.
run_node() { # port, args...
    local port=$1
    shift
    mkdir -p "$dir/$port"
    printf '%q ' "$@" >"$dir/$port/args"
    redis-server "$@" --port "$port" --bind 127.0.0.1 --dir "$dir/$port" \
        --logfile "$dir/$port/log" --daemonize no >/dev/null 2>&1 &
}

# Records "role port pid" in DIR/procs so that stop finds every process.
launch() { # role, port, args...
    local role=$1 port=$2
    shift 2
    run_node "$port" "$@"
    echo "$role $port $!" >>"$dir/procs"
}

data_node() { # role, port, extra args...
    local role=$1 port=$2
    shift 2
    launch "$role" "$port" --save '' --appendonly no "$@"
}

# Every recorded process still runs (a node that could not bind exits at once).
all_alive() {
    local role port pid
    while read -r role port pid; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "redis-topology: the $role on port $port exited:" >&2
            tail -3 "$dir/$port/log" >&2 || true
            return 1
        fi
    done <"$dir/procs"
}

wait_until() { # what, command...
    local what=$1
    shift
    local end=$((SECONDS + DEADLINE_S))
    until "$@"; do
        all_alive || return 1
        if ((SECONDS >= end)); then
            echo "redis-topology: timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

pings() { [ "$(cli "$1" ping)" = PONG ]; }

all_ping() {
    local role port pid
    while read -r role port pid; do
        pings "$port" || return 1
    done <"$dir/procs"
}

start_single() {
    local p
    p=$(free_port)
    data_node primary "$p"
    wait_until "redis-server on $p" all_ping
    url="redis://127.0.0.1:$p"
}

replica_synced() { cli "$1" info replication | grep -q '^master_link_status:up'; }

sentinel_ready() { # port: knows both replicas and the two other sentinels
    local info
    info=$(cli "$1" sentinel master "$MASTER" | tr -d '\r') || return 1
    [ "$(grep -A1 -x 'num-slaves' <<<"$info" | tail -1)" = 2 ] &&
        [ "$(grep -A1 -x 'num-other-sentinels' <<<"$info" | tail -1)" = 2 ]
}

start_sentinel() {
    local primary r1 r2 s
    primary=$(free_port)
    r1=$(free_port)
    r2=$(free_port)
    data_node primary "$primary"
    data_node replica "$r1" --replicaof 127.0.0.1 "$primary"
    data_node replica "$r2" --replicaof 127.0.0.1 "$primary"
    local sentinels=()
    for _ in 1 2 3; do
        s=$(free_port)
        sentinels+=("$s")
        mkdir -p "$dir/$s"
        # Sentinel rewrites its configuration file: each gets its own.
        cat >"$dir/$s/sentinel.conf" <<EOF
sentinel monitor $MASTER 127.0.0.1 $primary 2
sentinel down-after-milliseconds $MASTER $DOWN_MS
sentinel failover-timeout $MASTER 10000
sentinel parallel-syncs $MASTER 2
EOF
        launch sentinel "$s" "$dir/$s/sentinel.conf" --sentinel
    done
    wait_until "every process to answer" all_ping
    wait_until "replica $r1 to sync" replica_synced "$r1"
    wait_until "replica $r2 to sync" replica_synced "$r2"
    for s in "${sentinels[@]}"; do
        wait_until "sentinel $s to see the replicas and the other sentinels" sentinel_ready "$s"
    done
    url="redis-sentinel://127.0.0.1:${sentinels[0]},127.0.0.1:${sentinels[1]},127.0.0.1:${sentinels[2]}/$MASTER"
}

cluster_ok() { # port: the node sees a healthy cluster of 6 nodes
    local info
    info=$(cli "$1" cluster info | tr -d '\r') || return 1
    grep -q '^cluster_state:ok' <<<"$info" && grep -q '^cluster_known_nodes:6' <<<"$info" &&
        grep -q '^cluster_slots_ok:16384' <<<"$info"
}

replicas_attached() { # port of any node: every primary has a replica in sync
    [ "$(cli "$1" cluster nodes | grep -c ' slave .* connected')" = 3 ]
}

start_cluster() {
    local ports=() p
    for _ in 1 2 3 4 5 6; do
        p=$(free_port)
        ports+=("$p")
        data_node node "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout "$DOWN_MS" --cluster-replica-validity-factor 0
    done
    wait_until "every node to answer" all_ping
    local addrs=()
    for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
    # The first three become primaries, the others their replicas.
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || {
        cat "$dir/create.log" >&2
        return 1
    }
    for p in "${ports[@]}"; do
        wait_until "node $p to see the whole cluster" cluster_ok "$p"
    done
    wait_until "every primary to have a replica" replicas_attached "${ports[0]}"
    # The roles as the cluster gave them.
    local tmp="$dir/procs.tmp" role port pid
    : >"$tmp"
    while read -r role port pid; do
        if cli "$port" role | head -1 | grep -q master; then role=primary; else role=replica; fi
        echo "$role $port $pid" >>"$tmp"
    done <"$dir/procs"
    mv "$tmp" "$dir/procs"
    url="redis-cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
}

write_json() {
    local role port pid first=1
    {
        printf '{"kind":"%s","url":"%s","nodes":[' "$kind" "$url"
        while read -r role port pid; do
            ((first)) || printf ','
            first=0
            printf '{"role":"%s","port":%s,"pid":%s}' "$role" "$port" "$pid"
        done <"$dir/procs"
        printf ']}\n'
    } >"$dir/topology.json"
}

stop_all() {
    [ -f "$dir/procs" ] || return 0
    local role port pid
    while read -r role port pid; do
        kill "$pid" 2>/dev/null || true
    done <"$dir/procs"
    local end=$((SECONDS + 5))
    while read -r role port pid; do
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
    done <"$dir/procs"
}

show_logs() {
    local f
    for f in "$dir"/*/log; do
        [ -f "$f" ] || continue
        echo "--- $f" >&2
        tail -5 "$f" >&2
    done
}

# Stops the data nodes (not the sentinels) and waits until they have exited. With "--save" each
# writes its data to its dump first, for up to load; else the dump (a replica's full sync leaves
# one) is removed, so that up starts it empty.
down_all() { # [--save]
    local save=${1:-} role port pid
    while read -r role port pid; do
        [ "$role" = sentinel ] && continue
        if [ "$save" = --save ]; then
            cli "$port" shutdown save >/dev/null || true
        else
            kill "$pid" 2>/dev/null || true
        fi
    done <"$dir/procs"
    while read -r role port pid; do
        [ "$role" = sentinel ] && continue
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
        [ "$save" = --save ] || rm -f "$dir/$port/dump.rdb"
    done <"$dir/procs"
}

# CONFIG SET on one data node, and the same arguments for its next start.
config_node() { # port, name value...
    local port=$1
    shift
    [ "$(cli "$port" config set "$@")" = OK ] || die "CONFIG SET $* refused on port $port"
    while [ $# -ge 2 ]; do
        printf -- '--%s %q ' "$1" "$2" >>"$dir/$port/args"
        shift 2
    done
}

# Starts again the data nodes (of `role` only, if given) that are not running, with the
# arguments they had.
restart_nodes() { # [role]
    local only=${1:-} role port pid args tmp="$dir/procs.tmp"
    : >"$tmp"
    while read -r role port pid; do
        if [ "$role" != sentinel ] && { [ -z "$only" ] || [ "$role" = "$only" ]; } &&
            ! kill -0 "$pid" 2>/dev/null; then
            args=$(cat "$dir/$port/args")
            eval "run_node $port $args"
            pid=$!
        fi
        echo "$role $port $pid" >>"$tmp"
    done <"$dir/procs"
    mv "$tmp" "$dir/procs"
}

sentinel_sees_primary() { # sentinel port: it holds the primary up (flags "master", nothing else)
    local info
    info=$(cli "$1" sentinel master "$MASTER" | tr -d '\r') || return 1
    [ "$(grep -A1 -x 'flags' <<<"$info" | tail -1)" = master ]
}

# Waits for `command` for DEADLINE_S, without checking that every recorded process runs (some
# are still down on purpose).
wait_plain() { # what, command...
    local what=$1
    shift
    local end=$((SECONDS + DEADLINE_S))
    until "$@"; do
        if ((SECONDS >= end)); then
            echo "redis-topology: timed out waiting for $what" >&2
            return 1
        fi
        sleep 0.05
    done
}

# Starts the data nodes again with the arguments they had, and waits until the set-up works. On
# Sentinel the primary comes back first, and the replicas once every sentinel holds it up again:
# a replica back while the sentinels still held the primary down could be promoted, a failover
# nobody asked for (and a second loss of data, as the replica is as empty as the primary).
up_all() { # [--empty]
    local role port pid
    if [ "${1:-}" = --empty ]; then
        while read -r role port pid; do
            [ "$role" = sentinel ] || rm -f "$dir/$port/dump.rdb"
        done <"$dir/procs"
    fi
    if [ "$kind" = sentinel ]; then
        restart_nodes primary
        while read -r role port pid; do
            [ "$role" = primary ] && { wait_plain "the primary on $port" pings "$port" || return 1; }
        done <"$dir/procs"
        while read -r role port pid; do
            [ "$role" = sentinel ] || continue
            wait_plain "sentinel $port to hold the primary up" sentinel_sees_primary "$port" || return 1
        done <"$dir/procs"
    fi
    restart_nodes
    wait_until "every process to answer" all_ping || return 1
    while read -r role port pid; do
        if [ "$kind" = cluster ]; then
            wait_until "node $port to see the whole cluster" cluster_ok "$port" || return 1
        elif [ "$kind" = sentinel ] && [ "$role" = replica ]; then
            wait_until "replica $port to sync" replica_synced "$port" || return 1
        fi
    done <"$dir/procs"
    write_json
}

usage() { die "usage: $0 start single|sentinel|cluster DIR | down DIR [--save] | up DIR [--empty] | config DIR PORT NAME VALUE... | stop DIR | run KIND COMMAND..."; }

if [ "${1:-}" = run ]; then
    [ $# -ge 3 ] || usage
    kind=$2
    shift 2
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/redis-topology.XXXXXX")
    trap '"$0" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    REDIS_TOPOLOGY_URL=$("$0" start "$kind" "$tmp") || exit 1
    export REDIS_TOPOLOGY_URL
    export REDIS_TOPOLOGY_DIR=$tmp
    status=0
    "$@" || status=$?
    exit "$status"
fi

case ${1:-} in
    stop | down | up | config)
        verb=$1
        [ $# -ge 2 ] || usage
        dir=$2
        shift 2
        case $verb:$# in
            stop:0 | down:0 | up:0) ;;
            down:1) [ "$1" = --save ] || usage ;;
            up:1) [ "$1" = --empty ] || usage ;;
            config:*) [ $# -ge 3 ] && [ $(($# % 2)) -eq 1 ] || usage ;;
            *) usage ;;
        esac
        [ -f "$dir/topology.json" ] || die "no topology in $dir"
        kind=$(sed -n 's/^{"kind":"\([a-z]*\)".*/\1/p' "$dir/topology.json")
        url=$(sed -n 's/^{"kind":"[a-z]*","url":"\([^"]*\)".*/\1/p' "$dir/topology.json")
        case $verb in
            stop) stop_all ;;
            down) down_all "$@" ;;
            up) up_all "$@" ;;
            config) config_node "$@" ;;
        esac
        exit 0
        ;;
    start)
        [ $# -eq 3 ] || usage
        kind=$2
        dir=$3
        ;;
    *) usage ;;
esac
case $kind in single | sentinel | cluster) ;; *) usage ;; esac
need redis-server
need redis-cli
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# A start that fails (a port taken meanwhile, a node too slow) stops what it started and tries
# again with other ports, twice at most.
for attempt in 1 2 3; do
    : >"$dir/procs"
    url=
    if "start_$kind"; then
        write_json
        echo "$url"
        exit 0
    fi
    ((attempt < 3)) || show_logs
    stop_all
    rm -rf "${dir:?}"/[0-9]*
    echo "redis-topology: attempt $attempt failed" >&2
done
exit 1
