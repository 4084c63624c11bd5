#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# The real mandos-client gets its secret from the server, over IPv6 and over
# IPv4 (IPv4-mapped on the dual-stack socket); unknown, disabled and
# timed-out clients get nothing, with the reference's log lines; SIGTERM and
# SIGINT make the server exit 0.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha)" \
	"$(client_section bravo 'enabled = false')" \
	"$(client_section charlie 'timeout = PT1S' 'interval = PT1S' 'checker = false')"
ensure_keys stranger # has keys, but is not in clients.conf

# ---------------------------------------------------------------- one run
if ! start_mandos; then
	not_ok "server starts and listens on port $PORT"
	finish
fi
ok "server starts and listens on port $PORT"
started=$(date +%s.%N)

# (a) a known client gets exactly its secret, over IPv6 and IPv4
expect_secret "alpha gets its secret over [::1]:$PORT" alpha "[::1]:$PORT"
assert_log "Sending secret to alpha"
expect_secret "alpha gets its secret over 127.0.0.1:$PORT (IPv4-mapped)" \
	alpha "127.0.0.1:$PORT"
assert_log "::ffff:127.0.0.1"
check "server logged two 'Sending secret to alpha'" \
	test "$(log_count 'Sending secret to alpha')" -ge 2

# (b) a key that is not in clients.conf gets nothing
expect_nothing "unknown client (stranger) gets nothing" stranger "[::1]:$PORT" 3
assert_log "Client not found for key ID: $(key_id_of stranger)"

# (c) a disabled client gets nothing
expect_nothing "disabled client (bravo) gets nothing" bravo "[::1]:$PORT" 3
assert_log "Client bravo is disabled"
check "server did not send bravo its secret" \
	test "$(log_count 'Sending secret to bravo')" -eq 0

# (d) a client whose timeout (1 s) and interval (1 s) ran out with a failing
# checker is disabled; a normal client still gets its secret.
now=$(date +%s.%N)
left=$("$PY" -c "import sys; print(max(0.0, 3.0 - (float(sys.argv[2]) - float(sys.argv[1]))))" "$started" "$now")
sleep "$left"
expect_nothing "timed-out client (charlie) gets nothing after 3 s" charlie "[::1]:$PORT" 3
assert_log "Client charlie is disabled"
check "server did not send charlie its secret" \
	test "$(log_count 'Sending secret to charlie')" -eq 0
expect_secret "alpha still gets its secret" alpha "[::1]:$PORT"

# (e) SIGTERM: orderly exit 0
check "server still running before SIGTERM" alive "$MANDOS_PID"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

# ---------------------------------------------------------- second run: SIGINT
PORT=$(free_port)
STATEDIR=$(new_statedir)
if start_mandos; then
	ok "server starts again on port $PORT"
	expect_secret "alpha gets its secret from the second server" alpha "[::1]:$PORT"
	stop_mandos INT
	check "server exits 0 on SIGINT (got $MANDOS_RC)" test "$MANDOS_RC" = 0
else
	not_ok "server starts again on port $PORT"
fi

finish
