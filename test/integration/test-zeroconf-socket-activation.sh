#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# A socket-activated server announces the port of the socket it was given
# (the reference cannot): systemd-socket-activate listens on a port chosen
# here and passes the socket as fd 3; the server is also told --port of
# another port, which it must neither use nor announce. avahi-browse in the
# server's namespace resolves the activated port, and the real
# mandos-client in another namespace finds the server and gets its secret.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf
require_prog systemd-socket-activate

config_with alpha

zc_two_sites
zc_bus srv
zc_start_avahi srv

PORT=$(free_port)
OTHER_PORT=$(free_port)
while [ "$OTHER_PORT" = "$PORT" ]; do OTHER_PORT=$(free_port); done

STATEDIR=$(new_statedir)
start_mandos_cmd ip netns exec "${ZC_NS[srv]}" env DBUS_SYSTEM_BUS_ADDRESS="${ZC_BUS[srv]}" \
	systemd-socket-activate "${SOCKET_ACTIVATE_ENV[@]}" -l "[::]:$PORT" --fdname=mandos -E DBUS_SYSTEM_BUS_ADDRESS \
	"$MANDOS" --foreground --debug --no-dbus \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$OTHER_PORT"
if ports=$(zc_wait_port "$MANDOS_PID" 10) && [ "$ports" = "$PORT" ]; then
	ok "systemd-socket-activate listens on [::]:$PORT"
else
	not_ok "systemd-socket-activate listens on [::]:$PORT (has: ${ports:-nothing})"
	finish
fi

# systemd-socket-activate starts the server on the first connection (a
# socket unit would start it at boot): make one, from the server's side.
zc_in srv "$PY" -c 'import socket, sys
socket.create_connection(("::1", int(sys.argv[1])), timeout=5).close()' "$PORT" ||
	not_ok "connection to [::1]:$PORT to activate the server"
if log_has "Starting main loop" 10; then
	ok "the server was activated"
else
	not_ok "the server was activated"
fi

zc_check_service "avahi-browse resolves 'Mandos' on the activated port $PORT" srv Mandos "$PORT" 10
services=$(zc_services srv)
diag "browse: $(echo "$services" | tr '\n' ' ')"
check "only port $PORT is announced" \
	test "$(echo "$services" | awk -F'|' '{ print $4 }' | sort -u)" = "$PORT"

zc_expect_secret "mandos-client without --connect finds the activated server and gets alpha's secret" \
	cli vcli alpha 30
assert_log "Sending secret to alpha"
ports=$(listening_ports_of "$MANDOS_PID" | tr '\n' ' ')
check "the server listens only on the activated port $PORT (has: ${ports:-none})" \
	test "$ports" = "$PORT "

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
check "the service is withdrawn when the server stops" zc_gone srv Mandos 5

finish
