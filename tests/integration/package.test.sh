#!/usr/bin/env bash
# Builds the .deb the way a release is built and checks it without installing it on this machine
# (no `dpkg -i`): a fresh release build in a temporary directory, `cpack -G DEB`, then
#   1. the package holds the binary, the man page, the configuration, the systemd unit and the
#      sysusers.d entry where the unit expects them, and marks the configuration as a conffile;
#   2. its Depends come from dpkg-shlibdeps (the linked libraries) plus libwebsockets-evlib-uv
#      (the libuv plugin libwebsockets loads at run time), each a package this machine has;
#   3. extracted with `dpkg -x` into a temporary root, the binary validates the packaged
#      configuration (auth = jwt), refuses to start while its JWT secret file is missing, starts
#      once a secret is there (made the way postinst makes it), answers /healthz, /readyz and an
#      Engine.IO handshake, refuses a Socket.IO CONNECT without a token and accepts one with a
#      token signed by that secret, and exits 0 on SIGTERM.
# Usage: tests/integration/package.test.sh          (needs cmake, cpack, dpkg-dev, curl)
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

for tool in cmake cpack dpkg-deb dpkg-shlibdeps curl openssl base64; do
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

# --- build and package ---------------------------------------------------------------------------
if ! (cmake -S "$root" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DPRESENCED_TESTS=OFF -DPRESENCED_SANITIZE=OFF -DPRESENCED_FUZZ=OFF &&
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
has -rw-r--r-- ./usr/share/man/man8/presenced.8
has -rw-r--r-- ./etc/presenced/presenced.conf
has -rw-r--r-- ./usr/lib/sysusers.d/presenced.conf
unit_path=$(printf '%s\n' "$listing" | awk '$NF ~ /^\.(\/usr)?\/lib\/systemd\/system\/presenced\.service$/ { print substr($NF, 2) }')
[ -n "$unit_path" ] || fail "the package has no systemd unit in /lib/systemd/system or /usr/lib/systemd/system:
$listing"
if printf '%s\n' "$listing" | awk '{ print $NF }' | grep -q '^\./usr/local/\|^\./usr/etc/'; then
    fail "files under /usr/local or /usr/etc (built for the wrong prefix):
$listing"
fi
ok "contents: /usr/bin/presenced, man8/presenced.8, /etc/presenced/presenced.conf, $unit_path, sysusers.d"

mkdir "$tmp/control"
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/presenced/presenced.conf "$tmp/control/conffiles" 2>/dev/null ||
    fail "/etc/presenced/presenced.conf is not in conffiles ($(cat "$tmp/control/conffiles" 2>/dev/null))"
for s in postinst prerm postrm; do
    [ -x "$tmp/control/$s" ] && sh -n "$tmp/control/$s" || fail "maintainer script $s missing or not valid sh"
done
grep -q '^KEY=/etc/presenced/jwt.key$' "$tmp/control/postinst" ||
    fail "postinst does not generate /etc/presenced/jwt.key, which the packaged configuration reads"
ok "conffiles lists /etc/presenced/presenced.conf; maintainer scripts parse; postinst makes the JWT key"

# --- metadata ------------------------------------------------------------------------------------
[ "$(dpkg-deb -f "$deb" Package)" = presenced ] || fail "Package is not presenced"
depends=$(dpkg-deb -f "$deb" Depends)
for want in libwebsockets-evlib-uv libwebsockets17 libuv1 libhiredis libcjson libssl3 libcurl4; do
    [[ ", $depends" == *", $want"* ]] || fail "Depends lacks $want: $depends"
done
# Every dependency is a package name dpkg knows here, installed (the build needed each of them).
IFS=',' read -r -a deps <<<"$depends"
for d in "${deps[@]}"; do
    name=$(echo "$d" | sed 's/^ *//; s/[ (].*//')
    dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" ||
        fail "dependency '$name' is not an installed package on this machine (Depends: $depends)"
done
[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] && [ -n "$(dpkg-deb -f "$deb" Description)" ] ||
    fail "Maintainer or Description is empty"
ok "Depends: $depends"

# --- run the extracted binary --------------------------------------------------------------------
dpkg -x "$deb" "$tmp/root"
bin=$tmp/root/usr/bin/presenced
conf=$tmp/root/etc/presenced/presenced.conf
unit=$tmp/root$unit_path
grep -q '^ExecStart=/usr/bin/presenced --config /etc/presenced/presenced.conf$' "$unit" ||
    fail "the packaged unit does not start /usr/bin/presenced with /etc/presenced/presenced.conf"
# The daemon refuses unknown PRESENCED_* variables: give it a clean environment.
run() { env -i PATH=/usr/bin:/bin "$@"; }
out=$(run "$bin" --check-config "$conf" 2>&1) || fail "--check-config $conf: $out"
[ "$out" = "configuration ok" ] || fail "--check-config printed: $out"
grep -q '^auth = jwt$' "$conf" && grep -q '^jwt_secret_file = /etc/presenced/jwt.key$' "$conf" ||
    fail "the packaged configuration does not use auth = jwt with /etc/presenced/jwt.key"
ok "the extracted binary validates the packaged configuration (auth = jwt)"

# The secret lives where the extracted root would have it; postinst did not run, so it is missing.
key=$tmp/root/etc/presenced/jwt.key
set +e
out=$(run "$bin" --config "$conf" --listen 127.0.0.1:1 --set "jwt_secret_file=$key" 2>&1)
rc=$?
set -e
[ $rc -ne 0 ] && [[ $out == *"cannot read jwt_secret_file"*"$key"* ]] ||
    fail "without its JWT secret the daemon should refuse to start naming the file (exit $rc): $out"
ok "without /etc/presenced/jwt.key the daemon refuses to start: $(printf '%s' "$out" | grep -m1 jwt_secret_file)"
(umask 077 && head -c 32 /dev/urandom | base64 >"$key") # as postinst does

# A free port: try a few random ones, the daemon fails to start on one that is taken.
started=
for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue
    env -i PATH=/usr/bin:/bin "$bin" --config "$conf" --listen "127.0.0.1:$port" \
        --set "jwt_secret_file=$key" 2>"$tmp/daemon.log" &
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
[ -n "$started" ] || fail "the extracted daemon did not answer /readyz 200; its log:
$(cat "$tmp/daemon.log")"
grep -q '"ready"' "$tmp/readyz" || fail "/readyz answered $(cat "$tmp/readyz")"
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q '"ok"' || fail "/healthz did not answer ok"
hs=$(curl -fsS "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling") ||
    fail "Engine.IO polling handshake failed"
[[ $hs == '0{"sid":"'* ]] || fail "unexpected handshake answer: $hs"
ok "the extracted daemon runs from the packaged configuration: /readyz 200, /healthz, handshake"

# Socket.IO CONNECT over long-polling: one handshake, one POST, the answer on the next GET.
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
sio_connect() { # payload-of-CONNECT -> prints the server's answer
    local sid
    sid=$(curl -fsS "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling" | sed 's/^0{"sid":"\([^"]*\)".*/\1/')
    curl -fsS -o /dev/null -H 'Content-Type: text/plain' --data-binary "40$1" \
        "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling&sid=$sid"
    curl -fsS "http://127.0.0.1:$port/socket.io/?EIO=4&transport=polling&sid=$sid"
}
ans=$(sio_connect '{"userId":"mallory"}')
[[ $ans == '44{"message":"unauthorized"'* ]] || fail "a CONNECT without a token was answered: $ans"
now=$(date +%s)
head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
body=$(printf '{"sub":"alice","exp":%d}' $((now + 300)) | b64url)
sig=$(printf '%s.%s' "$head" "$body" | openssl dgst -sha256 -hmac "$(head -n1 "$key")" -binary | b64url)
ans=$(sio_connect "{\"token\":\"$head.$body.$sig\"}")
[[ $ans == '40{"sid":"'* ]] || fail "a CONNECT with a token signed by the generated secret was answered: $ans"
ok "auth = jwt: CONNECT without a token -> 44 unauthorized; with a token signed by the key -> 40"

kill -TERM "$pid"
set +e
wait "$pid"
rc=$?
set -e
pid=
[ $rc -eq 0 ] || fail "the daemon exited $rc after SIGTERM; its log:
$(cat "$tmp/daemon.log")"
ok "SIGTERM: exit 0"
echo "$passed passed, 0 failed"
