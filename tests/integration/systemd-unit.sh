#!/usr/bin/env bash
# Checks config/presenced.service with systemd's own tools, offline (no running systemd needed):
#   1. `systemd-analyze verify` on a copy whose ExecStart runs the built binary, with the man page
#      of Documentation=man:presenced(8) found in docs/ (when man is installed): any message fails;
#   2. the daemon accepts the ExecStart command line (--check-config with the unit's own flags,
#      the configuration path pointed at config/presenced.conf);
#   3. `systemd-analyze security --offline` keeps the unit's exposure at or below $MAX_EXPOSURE
#      (0.0 best, 10.0 worst; the unit is at 1.7), so that a hardening line removed by mistake
#      fails here.
# Usage: tests/integration/systemd-unit.sh <path-to-presenced>
set -euo pipefail

MAX_EXPOSURE=2.0
MAX_EXPOSURE_TENTHS=20 # the same, as systemd-analyze --threshold takes it (0-100)

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ $# -eq 1 ] || { echo "usage: $0 <path-to-presenced-binary>" >&2; exit 2; }
bin=$1
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
[ -x "$bin" ] || fail "$bin is not an executable file"
root=$(cd "$(dirname "$0")/../.." && pwd)
unit=$root/config/presenced.service
conf=$root/config/presenced.conf
[ -f "$unit" ] || fail "$unit is missing"
[ -f "$root/docs/presenced.8" ] || fail "$root/docs/presenced.8 (the unit's Documentation=) is missing"
command -v systemd-analyze >/dev/null ||
    fail "systemd-analyze not found: it comes with the 'systemd' package (scripts/deps test installs it)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The copy keeps the unit's name (verify derives the service name from it) and changes only the
# paths of ExecStart.
grep -q '^ExecStart=/usr/bin/presenced --config /etc/presenced/presenced.conf$' "$unit" ||
    fail "ExecStart of $unit is not '/usr/bin/presenced --config /etc/presenced/presenced.conf' (update this test and docs/operations.md together)"
sed -e "s#^ExecStart=/usr/bin/presenced --config /etc/presenced/presenced.conf\$#ExecStart=$bin --config $conf#" \
    "$unit" >"$tmp/presenced.service"
grep -q "^ExecStart=$bin " "$tmp/presenced.service" || fail "could not point ExecStart at $bin"

# 1. systemd-analyze verify
man_opt=--man=no
if command -v man >/dev/null; then
    mkdir -p "$tmp/man/man8"
    cp "$root/docs/presenced.8" "$tmp/man/man8/"
    export MANPATH=$tmp/man
    man_opt=--man=yes
else
    echo "note: man is not installed, Documentation=man:presenced(8) is not checked" >&2
fi
set +e
out=$(cd "$tmp" && systemd-analyze verify "$man_opt" ./presenced.service 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || [ -n "$out" ]; then
    fail "systemd-analyze verify $man_opt (exit $rc) reported:
$out"
fi
echo "ok 1 - systemd-analyze verify $man_opt: no message"

# 2. the ExecStart command line, as the daemon reads it
exec_line=$(sed -n 's/^ExecStart=//p' "$tmp/presenced.service")
read -r -a argv <<<"$exec_line"
set +e
out=$(env -i PATH="$PATH" "${argv[@]}" --check-config 2>&1)
rc=$?
set -e
[ $rc -eq 0 ] && [ "$out" = "configuration ok" ] ||
    fail "'$exec_line --check-config' exited $rc: $out"
echo "ok 2 - the daemon accepts the unit's ExecStart arguments"

# 3. hardening
set +e
out=$(cd "$tmp" && systemd-analyze security --offline=yes --threshold="$MAX_EXPOSURE_TENTHS" ./presenced.service 2>&1)
rc=$?
set -e
level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for presenced.service: \([0-9.]*\).*/\1/p')
[ -n "$level" ] || fail "systemd-analyze security printed no exposure level (exit $rc):
$out"
[ $rc -eq 0 ] || fail "exposure level $level is above $MAX_EXPOSURE; what is not hardened:
$(printf '%s\n' "$out" | grep '✗' || true)"
echo "ok 3 - systemd-analyze security: exposure $level <= $MAX_EXPOSURE"
echo "3 passed, 0 failed"
