#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# The server starts before avahi-daemon: it runs, serves clients that know
# its address, logs that avahi-daemon is not there, and announces its
# service as soon as the daemon is up (avahi-client waits for the daemon's
# name on the bus). Then the same with no system bus at all at first: the
# server tries again every 5 s and announces once bus and daemon are up.
# Each time the real mandos-client, browsing on its own from another
# namespace, gets its secret.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf

# ------------------------------------------- (1) a bus, but no avahi-daemon yet
zc_server_site alpha
zc_start_mandos srv
if port=$(zc_wait_port "$MANDOS_PID" 10); then
	ok "server starts and listens on port $port without avahi-daemon"
else
	not_ok "server starts and listens without avahi-daemon"
	finish
fi
assert_log "avahi-daemon is not running; service 'Mandos' will be announced when it starts"
sleep 2
check "server is still running after 2 s without avahi-daemon" alive "$MANDOS_PID"
check "server is connected to the bus, waiting for avahi-daemon" zc_on_bus srv "$MANDOS_PID"

zc_start_avahi srv
zc_check_service "the service is announced once avahi-daemon is up" srv Mandos "$port" 10
assert_log "Zeroconf: avahi-daemon is available"
zc_expect_secret "alpha finds the server and gets its secret" cli vcli alpha 30
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
zc_stop_avahi srv TERM

# -------------------------------------------- (2) no system bus at all at first
bus_socket=${ZC_BUS[srv]#unix:path=}
zc_stop_bus srv
check "the bus is gone" test ! -S "$bus_socket"

zc_start_mandos srv
if port=$(zc_wait_port "$MANDOS_PID" 10); then
	ok "server starts and listens on port $port without a system bus"
else
	not_ok "server starts and listens without a system bus"
	finish
fi
assert_log "Zeroconf: cannot reach avahi-daemon on the D-Bus system bus"
sleep 1
check "server is still running without a system bus" alive "$MANDOS_PID"

zc_bus srv
check "the bus is back at the same address" test -S "$bus_socket"
zc_start_avahi srv
# avahi-daemon's start, plus at most one 5 s retry period
zc_check_service "the service is announced once bus and avahi-daemon are up" srv Mandos "$port" 12
check "a single warning for the whole outage" \
	test "$(log_count 'cannot reach avahi-daemon')" -eq 1
zc_expect_secret "alpha finds the server and gets its secret" cli vcli alpha 30
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

finish
