#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Privileges fail closed (mandos(8), PRIVILEGES):
#  1. Started as root without the capability to change its user (a bounding
#     set without CAP_SETUID/CAP_SETGID), the server stops instead of
#     carrying on as root, as the reference does.
#  2. mandos.conf's run_as_root = yes is the one way to keep root.
#  3. Started as _mandos with CAP_NET_RAW ambient (as the shipped unit's
#     AmbientCapabilities= does it), the server holds no effective
#     capability, while its checkers still get CAP_NET_RAW (fping needs it).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog setpriv

user=$(server_user)
group=$(id -gn "$user")
CAP_NET_RAW_BIT=$((1 << 13))

chmod 0755 "$SCRATCH"
CAPSDIR="$SCRATCH/caps"
mkdir -m 0777 "$CAPSDIR"
CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha 'interval = PT1S' \
	"checker = grep ^Cap /proc/self/status > $CAPSDIR/checker.tmp && mv $CAPSDIR/checker.tmp $CAPSDIR/checker")"
chmod -R a+rX "$CONFDIR"

# cap_field PID FIELD: the hex value of FIELD (CapEff, CapAmb, …) of PID.
cap_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
has_net_raw() { [ $((16#$1 & CAP_NET_RAW_BIT)) -ne 0 ]; }

# 1. No CAP_SETUID: a failed start.
PORT=$(free_port)
start_mandos_cmd setpriv --bounding-set=-setuid,-setgid \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$(new_statedir)" --port "$PORT"
wait_until 10 exited "$MANDOS_PID"
if alive "$MANDOS_PID"; then
	not_ok "root without CAP_SETUID: the server stops (it runs as uid $(awk '/^Uid:/ { print $2 }' "/proc/$MANDOS_PID/status"))"
	stop_mandos TERM
else
	wait "$MANDOS_PID" 2>/dev/null
	rc=$?
	check "root without CAP_SETUID: the server exits non-zero (got $rc)" test "$rc" -ne 0
	assert_log "not running as root: Operation not permitted"
	check "root without CAP_SETUID: it never listened" sh -c "! grep -q 'Starting main loop' '$MANDOS_LOG'"
fi

# 2. run_as_root = yes keeps root.
MANDOS_CONF_EXTRA='run_as_root = yes' write_config "$SCRATCH/conf-root" "$(client_section alpha)"
PORT=$(free_port)
CONFDIR="$SCRATCH/conf-root" STATEDIR=$(new_statedir) start_mandos || bail "server with run_as_root does not start"
check "run_as_root = yes: the server keeps root" test "$(awk '/^Uid:/ { print $3 }' "/proc/$MANDOS_PID/status")" = 0
assert_log "Running as root, as mandos.conf's run_as_root asks"
expect_secret "run_as_root = yes: alpha is served" alpha "[::1]:$PORT"
stop_mandos TERM

# 3. As _mandos with CAP_NET_RAW ambient.
PORT=$(free_port)
start_mandos_cmd setpriv --reuid="$user" --regid="$group" --clear-groups \
	--inh-caps=+net_raw --ambient-caps=+net_raw \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$(new_statedir)" --port "$PORT"
wait_listening "$PORT" 10 || bail "server does not start as $user with CAP_NET_RAW ambient"
eff=$(cap_field "$MANDOS_PID" CapEff)
amb=$(cap_field "$MANDOS_PID" CapAmb)
check "the server holds no effective capability (CapEff $eff)" test "$((16#$eff))" -eq 0
check "CAP_NET_RAW stays ambient for its checkers (CapAmb $amb)" has_net_raw "$amb"
check "a checker ran" log_has "Checker for alpha succeeded" 5
if [ -s "$CAPSDIR/checker" ]; then
	ceff=$(awk '$1 == "CapEff:" { print $2 }' "$CAPSDIR/checker")
	check "the checker has CAP_NET_RAW effective (CapEff $ceff)" has_net_raw "$ceff"
else
	not_ok "the checker wrote its capabilities"
fi
expect_secret "alpha is served" alpha "[::1]:$PORT"
stop_mandos TERM
finish
