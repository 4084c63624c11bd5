#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# A systemd manager that never answers does not hold up the server run as
# root (README.md, Security): the first checker connects to the manager for
# its scope, and every call (Subscribe, StartTransientUnit) is asynchronous.
# On a private system bus, a peer holds org.freedesktop.systemd1 and never
# reads what it is sent. The server (run_as_root, so that it talks to the
# manager itself) starts its first checker within its interval (2 s); the real mandos-client
# gets its secret within 3 s, three times, and the checker runs anyway,
# outside a scope, once the manager has not answered for 5 s.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus
require_root
[ -f /usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf ] ||
	skip "needs systemd's D-Bus policy (root may own org.freedesktop.systemd1)"

dir="$SCRATCH/bus-hung"
mkdir -p "$dir"
chmod 0755 "$dir"
write_bus_config "$dir" /usr/share/dbus-1/system.d
run_bus "$dir" "$dir/dbus.log"
BUS="unix:path=$dir/system_bus_socket"

# The hung manager: owns the name, never dispatches a message.
setsid "$PY" -c '
import sys, time, dbus
bus = dbus.bus.BusConnection(sys.argv[1])
assert bus.request_name("org.freedesktop.systemd1") == dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER
print("owned", flush=True)
time.sleep(300)
' "$BUS" </dev/null >"$SCRATCH/hung.log" 2>&1 &
remember_pid $!
log_has owned 10 "$SCRATCH/hung.log" || bail "the hung manager did not take its name: $(cat "$SCRATCH/hung.log")"
ok "a peer that never answers holds org.freedesktop.systemd1"

CONFDIR="$SCRATCH/conf"
MANDOS_CONF_EXTRA="run_as_root = True" write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true' 'interval = 2s')"
PORT=$(free_port)
STATEDIR=$(new_statedir)
start_mandos_cmd env DBUS_SYSTEM_BUS_ADDRESS="$BUS" "$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
wait_listening "$PORT" 10 || bail "the server does not listen"
if log_has "Starting checker" 5; then ok "the first checker starts (within its interval)"; else not_ok "the first checker starts"; fi

t=$(vg_scale 3)
for i in 1 2 3; do
	expect_secret "fetch $i while the manager does not answer: the secret within $t s" alpha "[::1]:$PORT" "$t"
done
if log_has "Checker for alpha succeeded" "$(vg_scale 10)"; then
	ok "the checker runs outside a scope after 5 s without an answer, and succeeds"
else
	not_ok "the checker runs outside a scope after 5 s without an answer, and succeeds"
fi
assert_log "did not set up"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
