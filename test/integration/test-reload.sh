#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# SIGHUP reloads clients.conf and clients.d/*.conf (mandos(8), RELOADING): a
# client added to the files can fetch at once, a client taken out gets nothing,
# a changed one takes its new settings, all without a restart and without
# harming a connection in flight.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section charlie 'checker = true' 'approval_delay = PT3S' 'approved_by_default = True')"
ensure_keys bravo
ensure_keys delta

start_mandos || bail "server does not start"
expect_secret "alpha is served" alpha "[::1]:$PORT"
expect_nothing "bravo is not configured yet" bravo "[::1]:$PORT" 2

# A connection in flight: charlie waits 3 s for its approval by default.
fetch_bg charlie "$SCRATCH/charlie.out" 20
charlie_pid=$FETCH_PID
assert_log "Client charlie needs approval" 3

# alpha out, bravo in, charlie's host changed, delta in a drop-in.
write_config "$CONFDIR" \
	"$(client_section bravo 'checker = true')" \
	"$(client_section charlie 'checker = true' 'approval_delay = PT3S' 'approved_by_default = True' | sed 's/^host = .*/host = charlie.example/')"
mkdir -p "$CONFDIR/clients.d"
client_section delta 'checker = true' >"$CONFDIR/clients.d/10-delta.conf"
printf '# not a .conf file: ignored\n[zulu]\nsecret = aGk=\n' >"$CONFDIR/clients.d/README"
kill -HUP "$MANDOS_PID"
assert_log "Reloaded the configuration: 3 clients, 2 added, 1 removed"
assert_log "Client alpha removed: no longer configured"
assert_log "Client bravo added"
assert_log "Client delta added"
assert_log "Client charlie changed: host"
check "the server is still running" alive "$MANDOS_PID"

expect_secret "bravo, added by the reload, is served" bravo "[::1]:$PORT"
expect_secret "delta, added in clients.d, is served" delta "[::1]:$PORT"
expect_nothing "alpha, removed by the reload, gets nothing" alpha "[::1]:$PORT" 3
assert_log "Client not found for key ID: $(key_id_of alpha)"
check "zulu from a file not named *.conf was not loaded" test "$(log_count 'Creating client '"'"'zulu')" -eq 0

# charlie's connection, open across the reload, got its secret.
wait_until 10 test -s "$SCRATCH/charlie.out"
check "charlie's connection in flight got its secret after the reload" \
	test "$(cat "$SCRATCH/charlie.out")" = "$(secret_of charlie)"
kill_pid "$charlie_pid"

# charlie takes over alpha's keys and secret (alpha is gone): the key ID
# table follows the change.
write_config "$CONFDIR" \
	"$(client_section bravo 'checker = true')" \
	"$(client_section alpha 'checker = true' | sed 's/^\[alpha\]$/[charlie]/')"
kill -HUP "$MANDOS_PID"
assert_log "Client charlie changed: key_id"
expect_secret "alpha's keys now fetch charlie's new secret (alpha's)" alpha "[::1]:$PORT"
assert_log "Sending secret to charlie"
expect_nothing "charlie's old keys get nothing" charlie "[::1]:$PORT" 3
assert_log "Client not found for key ID: $(key_id_of charlie)"

# A configuration the server cannot read is not an empty one: nothing changes.
# (Started as root, the server's root launcher reads it: a directory in
# its place is what even root cannot read as a file.)
mv "$CONFDIR/clients.conf" "$CONFDIR/clients.conf.saved"
mkdir "$CONFDIR/clients.conf"
kill -HUP "$MANDOS_PID"
assert_log "Reload refused: the configuration could not be read; nothing changed"
rmdir "$CONFDIR/clients.conf"
mv "$CONFDIR/clients.conf.saved" "$CONFDIR/clients.conf"
expect_secret "bravo is still served after a refused reload" bravo "[::1]:$PORT"

stop_mandos TERM
check "server exits 0 on SIGTERM after reloads (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
