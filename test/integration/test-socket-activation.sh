#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# The server uses a listening socket it is given instead of making its own:
# (1) systemd-style socket activation (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES,
#     fd 3) from systemd-socket-activate, without --port;
# (2) --socket 3, with an already listening socket on fd 3.
# A socket from systemd that does not match mandos.conf's port or address is
# used all the same, and the mismatch logged at ERROR.
# In both cases the real mandos-client gets its secret on that socket's port,
# the server listens on no other port, and it exits 0 on SIGTERM.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog systemd-socket-activate

config_with alpha

# ------------------------------------------------ systemd-socket-activate
PORT=$(free_port)
STATEDIR=$(new_statedir)
# systemd-socket-activate listens at once, and execs the server (same PID)
# when the first connection arrives: the client's connection waits in the
# backlog meanwhile, as with a real .socket unit.
start_mandos_cmd systemd-socket-activate "${SOCKET_ACTIVATE_ENV[@]}" -l "[::1]:$PORT" --fdname=mandos \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR"
if wait_listening "$PORT" 10; then
	ok "systemd-socket-activate listens on [::1]:$PORT"
	expect_secret "socket-activated server serves alpha on [::1]:$PORT" \
		alpha "[::1]:$PORT" 15
	assert_log "Sending secret to alpha"
	check "socket-activated server is still running" alive "$MANDOS_PID"
	expect_secret "socket-activated server serves alpha a second time" \
		alpha "[::1]:$PORT" 10
	ports=$(listening_ports_of "$MANDOS_PID" | tr '\n' ' ')
	check "socket-activated server listens only on port $PORT (has: ${ports:-none})" \
		test "$ports" = "$PORT "
	stop_mandos TERM
	check "socket-activated server exits 0 on SIGTERM (got $MANDOS_RC)" \
		test "$MANDOS_RC" = 0
else
	not_ok "systemd-socket-activate listens on [::1]:$PORT"
fi

# ------------------- systemd's socket does not match what mandos.conf says
# (a host whose initramfs connects to a fixed port would find nobody): the
# server uses the socket it was given, and says so at level ERROR with both
# values.
PORT=$(free_port)
OTHER=$(free_port)
STATEDIR=$(new_statedir)
MANDOS_CONF_EXTRA="port = $OTHER
address = 127.0.0.1" write_config "$SCRATCH/conf-mismatch" "$(client_section alpha)"
start_mandos_cmd systemd-socket-activate "${SOCKET_ACTIVATE_ENV[@]}" -l "[::1]:$PORT" --fdname=mandos \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$SCRATCH/conf-mismatch" --statedir "$STATEDIR"
if wait_listening "$PORT" 10; then
	expect_secret "with another port in mandos.conf, the server serves on systemd's socket" \
		alpha "[::1]:$PORT" 15
	assert_log "ERROR: The socket systemd passed listens on port $PORT, but the configuration asks for port $OTHER"
	assert_log "ERROR: The socket systemd passed listens on address ::1, but the configuration asks for 127.0.0.1"
	stop_mandos TERM
else
	not_ok "systemd-socket-activate listens on [::1]:$PORT (mandos.conf with another port)"
fi

# ------------------------------------------------------------- --socket 3
PORT=$(free_port)
STATEDIR=$(new_statedir)
start_mandos_cmd "$PY" "$PEERS" listen-exec --address ::1 --port "$PORT" --fd 3 -- \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --socket 3
if wait_listening "$PORT" 10; then
	ok "listening socket on [::1]:$PORT handed over as fd 3"
	expect_secret "--socket 3 server serves alpha on [::1]:$PORT" \
		alpha "[::1]:$PORT" 15
	assert_log "Sending secret to alpha"
	check "--socket 3 server is still running" alive "$MANDOS_PID"
	ports=$(listening_ports_of "$MANDOS_PID" | tr '\n' ' ')
	check "--socket 3 server listens only on port $PORT (has: ${ports:-none})" \
		test "$ports" = "$PORT "
	stop_mandos TERM
	check "--socket 3 server exits 0 on SIGTERM (got $MANDOS_RC)" \
		test "$MANDOS_RC" = 0
else
	not_ok "listening socket on [::1]:$PORT handed over as fd 3"
fi

finish
