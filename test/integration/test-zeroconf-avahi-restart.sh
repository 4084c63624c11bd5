#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# avahi-daemon goes away while the server runs (killed with SIGKILL, then
# stopped with SIGTERM) and comes back: the server keeps running, says so
# in its log, and announces its service again; avahi-browse shows it
# within 5 s of the new daemon's start, and the real mandos-client in
# another namespace finds the server and gets its secret each time.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf

zc_server_site alpha
zc_start_avahi srv

zc_start_mandos srv
if port=$(zc_wait_port "$MANDOS_PID" 10) && took=$(zc_wait_service srv Mandos "$port" 10); then
	ok "server is announced on port $port (after ${took}s)"
else
	not_ok "server is announced"
	finish
fi
zc_expect_secret "alpha finds the server and gets its secret" cli vcli alpha 30

round=0
for sig in KILL TERM; do
	round=$((round + 1))
	zc_stop_avahi srv "$sig"
	ok "round $round: avahi-daemon stopped with SIG$sig"
	if log_has "lost avahi-daemon" 5 && [ "$(log_count 'lost avahi-daemon')" -eq "$round" ]; then
		ok "round $round: the server logs that it lost avahi-daemon"
	else
		not_ok "round $round: the server logs that it lost avahi-daemon (count $(log_count 'lost avahi-daemon'))"
	fi
	sleep 1
	check "round $round: the server is still running without avahi-daemon" alive "$MANDOS_PID"

	zc_start_avahi srv
	zc_check_service "round $round: avahi-browse shows the service again within 5 s" srv Mandos "$port" 5
	if [ "$(log_count 'avahi-daemon is available')" -eq "$round" ]; then
		ok "round $round: the server logs that avahi-daemon is available"
	else
		not_ok "round $round: the server logs that avahi-daemon is available (count $(log_count 'avahi-daemon is available'))"
	fi
	zc_expect_secret "round $round: alpha finds the server again and gets its secret" cli vcli alpha 30
done
check "served alpha three times" test "$(log_count 'Sending secret to alpha')" -eq 3
check "the server stayed connected to the bus" zc_on_bus srv "$MANDOS_PID"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

finish
