#!/usr/bin/env bash
# Builds the .deb the way a release is built, installs it into a temporary root and tries it as an
# operator would, without touching this machine's own system:
#   1. a fresh release build in a temporary directory and `cpack -G DEB`; the package holds the
#      binary, the compressed man page, the configuration (a conffile), the unit, the sysusers.d
#      entry, the copyright file and the changelog, and depends on what its maintainer scripts run;
#   2. lintian reports no error and no warning;
#   3. `dpkg --root=ROOT --force-script-chrootless -i` installs it into a temporary root and runs
#      its postinst there (DPKG_ROOT): the presenced user exists in that root, and the JWT key and
#      the API key were generated (64 hexadecimal digits, root:presenced, 0640); hardening-check
#      finds the stack protector, _FORTIFY_SOURCE, full RELRO with BIND_NOW and PIE in the
#      installed binary;
#   4. the installed binary, started on the installed configuration with those two keys, refuses
#      what an outsider tries: /v1, a disconnect, the event stream, the statistics and the live page
#      without the key or with a wrong one (401), a browser page from another origin (403), a
#      Socket.IO CONNECT that only claims a user id or carries a token signed with another key
#      (CONNECT_ERROR unauthorized); and it accepts a token signed with the generated JWT key and
#      the requests that carry the generated API key; an anonymous socket can neither query
#      presence nor hear its events (anonymous_reads = off). Without either key file it does not
#      start;
#   5. installing again (an upgrade) keeps both keys; purging removes them and the configuration.
# Run as root, or as any user with fakeroot installed (the install then runs under fakeroot).
# Environment: PRESENCED_DEB_MAINTAINER, the Maintainer of the test package.
# Usage: tests/integration/package.test.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
passed=0
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() {
    passed=$((passed + 1))
    echo "ok $passed - $*"
}

tools=(cmake cpack dpkg dpkg-deb dpkg-shlibdeps curl openssl base64 lintian hardening-check
       systemd-sysusers deb-systemd-helper)
[ "$(id -u)" -eq 0 ] || tools+=(fakeroot)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null || fail "$tool not found (scripts/deps test installs what the tests need)"
done

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Commands that need root inside the installed root (dpkg, chown in postinst, reading owners).
if [ "$(id -u)" -eq 0 ]; then
    asroot() { "$@"; }
else
    touch "$tmp/fakeroot.state"
    asroot() { fakeroot -i "$tmp/fakeroot.state" -s "$tmp/fakeroot.state" -- "$@"; }
fi

# --- build and package ---------------------------------------------------------------------------
maintainer=${PRESENCED_DEB_MAINTAINER:-presenced package test <package-test@presenced.invalid>}
if ! (cmake -S "$root" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DPRESENCED_TESTS=OFF -DPRESENCED_SANITIZE=OFF -DPRESENCED_FUZZ=OFF \
    "-DPRESENCED_DEB_MAINTAINER=$maintainer" &&
    cmake --build "$tmp/build" -j"$(nproc)" &&
    cd "$tmp/build" && cpack -G DEB) >"$tmp/build.log" 2>&1; then
    tail -40 "$tmp/build.log" >&2
    fail "release build or cpack failed (log above)"
fi
debs=("$tmp"/build/presenced_*.deb)
[ ${#debs[@]} -eq 1 ] && [ -f "${debs[0]}" ] || fail "expected one presenced_*.deb, found: ${debs[*]}"
deb=${debs[0]}
ok "cpack -G DEB built $(basename "$deb")"

# --- contents ------------------------------------------------------------------------------------
listing=$(dpkg-deb -c "$deb")
has() { # mode-prefix path
    printf '%s\n' "$listing" | awk -v m="$1" -v p="$2" 'index($1, m) == 1 && $NF == p { f = 1 } END { exit !f }' ||
        fail "the package has no $2 (mode $1...); contents:
$listing"
}
has -rwxr-xr-x ./usr/bin/presenced
has -rw-r--r-- ./usr/share/man/man8/presenced.8.gz
has -rw-r--r-- ./etc/presenced/presenced.conf
has -rw-r--r-- ./usr/lib/sysusers.d/presenced.conf
has -rw-r--r-- ./usr/share/doc/presenced/copyright
has -rw-r--r-- ./usr/share/doc/presenced/changelog.gz
unit_path=$(printf '%s\n' "$listing" | awk '$NF ~ /^\.(\/usr)?\/lib\/systemd\/system\/presenced\.service$/ { print substr($NF, 2) }')
[ -n "$unit_path" ] || fail "the package has no systemd unit in /lib/systemd/system or /usr/lib/systemd/system:
$listing"
if printf '%s\n' "$listing" | awk '{ print $NF }' | grep -q '^\./usr/local/\|^\./usr/etc/'; then
    fail "files under /usr/local or /usr/etc (built for the wrong prefix):
$listing"
fi
ok "contents: /usr/bin/presenced, man8/presenced.8.gz, /etc/presenced/presenced.conf, $unit_path, sysusers.d, copyright, changelog.gz"

mkdir "$tmp/control"
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/presenced/presenced.conf "$tmp/control/conffiles" 2>/dev/null ||
    fail "/etc/presenced/presenced.conf is not in conffiles ($(cat "$tmp/control/conffiles" 2>/dev/null))"
for s in postinst prerm postrm; do
    [ -x "$tmp/control/$s" ] && sh -n "$tmp/control/$s" || fail "maintainer script $s missing or not valid sh"
done
ok "conffiles lists /etc/presenced/presenced.conf; maintainer scripts parse"

# --- metadata ------------------------------------------------------------------------------------
[ "$(dpkg-deb -f "$deb" Package)" = presenced ] || fail "Package is not presenced"
[ "$(dpkg-deb -f "$deb" Maintainer)" = "$maintainer" ] ||
    fail "Maintainer is '$(dpkg-deb -f "$deb" Maintainer)', configured '$maintainer'"
depends=$(dpkg-deb -f "$deb" Depends)
for want in libwebsockets-evlib-uv libwebsockets17 libuv1 libhiredis libcjson libssl3 libcurl4 \
    "systemd | systemd-standalone-sysusers | systemd-sysusers"; do
    [[ ", $depends" == *", $want"* ]] || fail "Depends lacks $want: $depends"
done
# Every dependency has an alternative that is a package installed here (the build needed the
# libraries; the sysusers alternative is what this test's install runs).
IFS=',' read -r -a deps <<<"$depends"
for d in "${deps[@]}"; do
    found=
    IFS='|' read -r -a alts <<<"$d"
    for a in "${alts[@]}"; do
        name=$(echo "$a" | sed 's/^ *//; s/[ (].*//')
        if dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed"; then
            found=1
        fi
    done
    [ -n "$found" ] || fail "no alternative of '$d' is installed on this machine (Depends: $depends)"
done
ok "Depends: $depends"

# --- lintian and hardening -----------------------------------------------------------------------
# Errors and warnings fail; an exception would go into the package as a lintian override with a
# comment saying why (there is none). Info tags are printed, not counted.
set +e
lintian --fail-on error,warning "$deb" >"$tmp/lintian.log" 2>&1
lint_rc=$?
set -e
grep -v '^running with root privileges' "$tmp/lintian.log" | sed 's/^/    lintian: /' || true
[ "$lint_rc" -eq 0 ] || fail "lintian found errors or warnings (above)"
ok "lintian: no error, no warning"


# --- install into a root -------------------------------------------------------------------------
R=$tmp/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc"
touch "$R/var/lib/dpkg/status"
# The root holds none of the libraries the package depends on: they are this machine's.
dpkg_root() {
    asroot dpkg --root="$R" --force-script-chrootless --force-depends --log=/dev/null "$@" \
        >>"$tmp/dpkg.log" 2>&1 || fail "dpkg $*:
$(cat "$tmp/dpkg.log")"
}
dpkg_root -i "$deb"
gid=$(sed -n 's/^presenced:[^:]*:\([0-9]*\):.*/\1/p' "$R/etc/group")
[ -n "$gid" ] && grep -q "^presenced:[^:]*:[0-9]*:$gid:" "$R/etc/passwd" ||
    fail "postinst did not create the presenced user and group in the root:
$(cat "$R/etc/passwd" "$R/etc/group" 2>/dev/null)"
jwt_key=$R/etc/presenced/jwt.key
api_key_file=$R/etc/presenced/api.key
for f in "$jwt_key" "$api_key_file"; do
    [ -f "$f" ] || fail "postinst did not generate $f"
    grep -Eqx '[0-9a-f]{64}' "$f" && [ "$(wc -l <"$f")" -eq 1 ] ||
        fail "$f is not one line of 64 hexadecimal digits"
    own=$(asroot stat -c '%u:%g %a' "$f")
    [ "$own" = "0:$gid 640" ] || fail "$f is $own, want 0:$gid (root:presenced) 640"
done
cmp -s "$jwt_key" "$api_key_file" && fail "the JWT key and the API key are the same"
ok "dpkg --root installs it: user presenced (gid $gid); jwt.key and api.key, 64 hex digits, root:presenced 0640"

# Control-flow protection is not asked for: bookworm's C start-up files (crt1.o) carry no CET
# marking, so no executable linked on bookworm can have it.
hard=$(hardening-check --nocfprotection "$R/usr/bin/presenced" 2>&1) || fail "hardening-check: $hard"
printf '%s\n' "$hard" | sed 's/^/    /'
ok "hardening-check on the installed binary: PIE, stack protector, fortified functions, RELRO, BIND_NOW"

# --- run the installed binary --------------------------------------------------------------------
bin=$R/usr/bin/presenced
conf=$R/etc/presenced/presenced.conf
grep -q '^ExecStart=/usr/bin/presenced --config /etc/presenced/presenced.conf$' "$R$unit_path" ||
    fail "the installed unit does not start /usr/bin/presenced with /etc/presenced/presenced.conf"
grep -q '^auth = jwt$' "$conf" && grep -q '^jwt_secret_file = /etc/presenced/jwt.key$' "$conf" &&
    grep -q '^api_key_file = /etc/presenced/api.key$' "$conf" ||
    fail "the installed configuration does not read /etc/presenced/jwt.key and /etc/presenced/api.key"
# The daemon refuses unknown PRESENCED_* variables: give it a clean environment. The two key
# paths point into the root, where the configuration's absolute paths would be once installed.
daemon=(env -i PATH=/usr/bin:/bin "$bin" --config "$conf")
run() { "${daemon[@]}" "$@"; }
out=$(run --check-config 2>&1) || fail "--check-config $conf: $out"
[ "$out" = "configuration ok" ] || fail "--check-config printed: $out"
for k in jwt_secret_file api_key_file; do
    set +e
    out=$(run --listen 127.0.0.1:1 --set "jwt_secret_file=$jwt_key" --set "api_key_file=$api_key_file" \
        --set "$k=$tmp/missing.key" 2>&1)
    rc=$?
    set -e
    [ $rc -ne 0 ] && [[ $out == *"cannot read $k"*"$tmp/missing.key"* ]] ||
        fail "without its $k the daemon should refuse to start naming the file (exit $rc): $out"
done
ok "the installed configuration validates; without either key file the daemon does not start"

# A free port: try a few random ones, the daemon fails to start on one that is taken.
started=
for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    # A simple command, not the function: $! is then the daemon itself, which SIGTERM must reach.
    "${daemon[@]}" --listen "127.0.0.1:$port" --set "jwt_secret_file=$jwt_key" \
        --set "api_key_file=$api_key_file" 2>"$tmp/daemon.log" &
    pid=$!
    for _ in $(seq 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if curl -fsS -o "$tmp/readyz" "http://127.0.0.1:$port/readyz" 2>/dev/null; then
            started=1
            break
        fi
        sleep 0.1
    done
    [ -n "$started" ] && break
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
done
[ -n "$started" ] || fail "the installed daemon did not answer /readyz 200; its log:
$(cat "$tmp/daemon.log")"
base=http://127.0.0.1:$port
ok "the installed daemon runs on the installed configuration and keys"

# Open without a key, by design: health, readiness and metrics (no presence data) and the
# Engine.IO handshake (which identifies nobody).
code() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
for p in /healthz /readyz /metrics; do
    [ "$(code "$base$p")" = 200 ] || fail "GET $p: $(code "$base$p")"
done
hs=$(curl -fsS "$base/socket.io/?EIO=4&transport=polling") || fail "Engine.IO polling handshake failed"
[[ $hs == '0{"sid":"'* ]] || fail "unexpected handshake answer: $hs"
ok "open: /healthz, /readyz, /metrics 200, Engine.IO handshake"

# Refused: the HTTP API, its event stream and the live page, without the key or with a wrong one.
key=$(head -n1 "$api_key_file")
wrong=$(printf '%s' "$key" | tr '0-9a-f' '1-9a-f0')
check_refused() { # method path
    local c
    for auth in "" "Authorization: Bearer $wrong"; do
        c=$(code -X "$1" ${auth:+-H "$auth"} --max-time 5 "$base$2")
        [ "$c" = 401 ] || fail "$1 $2 ${auth:+with a wrong key }answered $c, want 401"
    done
}
check_refused GET /v1/users/alice
check_refused GET '/v1/users?ids=alice,bob'
check_refused GET /v1/rooms/doc-42
check_refused POST /v1/users/alice/disconnect
check_refused GET /v1/events
check_refused GET /v1/stats
check_refused GET /
for p in "/?key=$wrong" "/v1/events?key=$wrong" "/v1/users/alice?key=$key"; do
    [ "$(code --max-time 5 "$base$p")" = 401 ] || fail "GET ${p%%\?*} with ?key= answered $(code "$base$p")"
done
ok "refused (401): /v1 users, rooms, disconnect, /v1/events, /v1/stats, the live page, without the key or with a wrong one"

c=$(code -H 'Origin: https://evil.example' "$base/socket.io/?EIO=4&transport=polling")
[ "$c" = 403 ] || fail "a handshake from a foreign browser origin answered $c, want 403"
ok "refused (403): an Engine.IO handshake from a browser page of another origin"

# Socket.IO CONNECT over long-polling: one handshake, one POST, the answer on the next GET.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
sio_connect() { # payload-of-CONNECT -> prints the server's answer
    local sid
    sid=$(curl -fsS "$base/socket.io/?EIO=4&transport=polling" | sed 's/^0{"sid":"\([^"]*\)".*/\1/')
    curl -fsS -o /dev/null -H 'Content-Type: text/plain' --data-binary "40$1" \
        "$base/socket.io/?EIO=4&transport=polling&sid=$sid"
    curl -fsS "$base/socket.io/?EIO=4&transport=polling&sid=$sid"
}
token() { # secret sub -> an HS256 token for sub, valid 5 minutes
    local head body sig
    head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    body=$(printf '{"sub":"%s","exp":%d}' "$2" $(($(date +%s) + 300)) | b64url)
    sig=$(printf '%s.%s' "$head" "$body" | openssl dgst -sha256 -hmac "$1" -binary | b64url)
    printf '%s.%s.%s' "$head" "$body" "$sig"
}
ans=$(sio_connect '{"userId":"mallory"}')
[[ $ans == '44{"message":"unauthorized"'* ]] || fail "a CONNECT claiming a userId without a token was answered: $ans"
ans=$(sio_connect "{\"token\":\"$(token "$wrong" mallory)\"}")
[[ $ans == '44{"message":"unauthorized"'* ]] || fail "a CONNECT with a token signed by another key was answered: $ans"
ok "refused (CONNECT_ERROR unauthorized): a claimed userId without a token, a token signed by another key"

# Accepted: a token signed with the generated JWT key (its text line, as it is, is the HMAC key),
# and the API with the generated API key.
ans=$(sio_connect "{\"token\":\"$(token "$(head -n1 "$jwt_key")" alice)\"}")
[[ $ans == '40{"sid":"'* ]] || fail "a CONNECT with a token signed by the generated JWT key was answered: $ans"
user=$(curl -fsS -H "Authorization: Bearer $key" "$base/v1/users/alice") ||
    fail "GET /v1/users/alice with the generated API key failed"
[[ $user == *'"userId":"alice","online":true'* ]] || fail "GET /v1/users/alice with the key: $user"
[ "$(code -H "Authorization: Bearer $key" "$base/v1/stats")" = 200 ] || fail "GET /v1/stats with the key"
page=$(curl -sS -o /dev/null -w '%{http_code} %{content_type}' "$base/?key=$key")
[[ $page == "200 text/html"* ]] || fail "the live page with ?key= answered $page"
set +e
sse=$(curl -sS -N -o /dev/null -w '%{http_code} %{content_type}' --max-time 1 \
    -H "Authorization: Bearer $key" "$base/v1/events" 2>/dev/null)
set -e
[[ $sse == "200 text/event-stream"* ]] || fail "GET /v1/events with the key answered '$sse'"
disc=$(curl -fsS -X POST -H "Authorization: Bearer $key" "$base/v1/users/alice/disconnect") ||
    fail "POST /v1/users/alice/disconnect with the key failed"
[[ $disc == *'"disconnecting":true'* ]] || fail "POST /v1/users/alice/disconnect with the key: $disc"
ok "accepted: CONNECT with a token signed by jwt.key -> 40; with api.key: /v1/users/alice (online), /v1/stats, /v1/events, /?key=, disconnect"

# The installed configuration has anonymous_reads = off: a socket without a token can neither read
# presence nor hear it. An anonymous socket and an identified observer are connected, then a user
# comes online; once the observer has heard it, the anonymous socket's queue holds everything it
# was sent before its query's answer: the refused query, and no presence event.
sio_open() { # -> the Engine.IO sid of a new session whose Socket.IO socket connected with auth $1
    local sid
    sid=$(curl -fsS "$base/socket.io/?EIO=4&transport=polling" | sed 's/^0{"sid":"\([^"]*\)".*/\1/')
    sio_post "$sid" "40$1"
    [[ $(sio_get "$sid") == '40{"sid":"'* ]] || fail "a CONNECT with '$1' was refused"
    printf '%s' "$sid"
}
sio_post() { curl -fsS -o /dev/null -H 'Content-Type: text/plain' --data-binary "$2" \
    "$base/socket.io/?EIO=4&transport=polling&sid=$1"; }
sio_get() { curl -fsS --max-time 30 "$base/socket.io/?EIO=4&transport=polling&sid=$1" | tr '\036' '\n'; }
anon=$(sio_open '')
observer=$(sio_open "{\"token\":\"$(token "$(head -n1 "$jwt_key")" carol)\"}")
sio_open "{\"token\":\"$(token "$(head -n1 "$jwt_key")" dave)\"}" >/dev/null
heard=
for _ in $(seq 20); do
    if sio_get "$observer" | grep -q '^42\["presence:online",{"userId":"dave"'; then
        heard=1
        break
    fi
done
[ -n "$heard" ] || fail "an identified observer never heard dave come online"
sio_post "$anon" '421["presence:query",{"userIds":["dave"]}]'
queued=$(sio_get "$anon")
[[ $queued == *'431[{"ok":false,"error":{"code":"not_identified"'* ]] ||
    fail "an anonymous presence:query was answered: $queued"
[[ $queued != *presence:* ]] || fail "an anonymous socket received presence events: $queued"
ok "anonymous_reads = off: an anonymous socket's presence:query gets not_identified, and it hears no presence event"

kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
pid=
[ $rc -eq 0 ] || fail "the daemon exited $rc after SIGTERM; its log:
$(cat "$tmp/daemon.log")"
ok "SIGTERM: exit 0"

# --- upgrade and purge ---------------------------------------------------------------------------
cp "$jwt_key" "$tmp/jwt.before"
cp "$api_key_file" "$tmp/api.before"
dpkg_root -i "$deb"
cmp -s "$jwt_key" "$tmp/jwt.before" && cmp -s "$api_key_file" "$tmp/api.before" ||
    fail "installing again replaced a key"
dpkg_root --purge presenced
[ ! -e "$jwt_key" ] && [ ! -e "$api_key_file" ] && [ ! -e "$conf" ] ||
    fail "purge left behind: $(ls -A "$R/etc/presenced" 2>&1)"
ok "installing again keeps both keys; purging removes them and the configuration"
echo "$passed passed, 0 failed"
