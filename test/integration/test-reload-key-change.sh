#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A rotated TLS key: a connection made with a client's old key and waiting
# for approval (approval_delay, man/mandos-clients.conf.5.xml) gets nothing
# once a reload (SIGHUP) gives that client a new key_id, even though the
# client is approved by default; a mandos-client with the new key is served.
# Likewise a waiting connection of a client taken out of clients.conf.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

# charlie's section with its TLS key_id replaced by delta's: the OpenPGP
# key, and so the secret, stay charlie's; only the TLS key is rotated.
ensure_keys charlie
ensure_keys delta
rotated_section() {
	client_section charlie "$@" | sed "s/^key_id = .*/key_id = $(key_id_of delta)/"
}

# run_client OUT TLSKEYS: the real mandos-client in the background with
# charlie's OpenPGP keys and the TLS keys of TLSKEYS; its pid in $client_pid.
run_client() {
	fetch_bg charlie "$1" 20 "$PORT" "$2"
	client_pid=$FETCH_PID
}

# wait_output SECONDS FILE...: wait until one of the FILEs is not empty
# (mandos-client retries after getting nothing, so it does not exit).
wait_output() {
	local max=$1
	shift
	wait_until "$max" any_nonempty "$@"
}

# any_nonempty FILE...: true if one of the FILEs is not empty.
any_nonempty() {
	local f
	for f in "$@"; do
		[ -s "$f" ] && return 0
	done
	return 1
}

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section charlie 'checker = true' 'approval_delay = PT4S' 'approved_by_default = True')" \
	"$(client_section bravo 'checker = true' 'approval_delay = PT4S' 'approved_by_default = True')"
start_mandos || bail "server does not start"

# The old key (charlie's own) connects and waits for its approval.
run_client "$SCRATCH/old.out" charlie
old_pid=$client_pid
assert_log "Client charlie needs approval" "$(vg_scale 3)"

# bravo waits too, and is then taken out of clients.conf; charlie's key rotates.
run_client "$SCRATCH/bravo.out" bravo
bravo_pid=$client_pid
assert_log "Client bravo needs approval" "$(vg_scale 3)"
write_config "$CONFDIR" \
	"$(rotated_section 'checker = true' 'approval_delay = PT4S' 'approved_by_default = True')"
kill -HUP "$MANDOS_PID"
assert_log "Client charlie changed: key_id"
assert_log "gets nothing: the client's key ID changed since it connected"
assert_log "gets nothing: the client was removed since it connected"

# Give the approval delay (4 s from connecting) every chance to run out.
wait_output 6 "$SCRATCH/old.out" "$SCRATCH/bravo.out"
check "the connection with the old key got nothing" test ! -s "$SCRATCH/old.out"
check "the removed client's connection got nothing" test ! -s "$SCRATCH/bravo.out"
check "the server never sent a secret for the old key or to bravo" \
	test "$(log_count 'Sending secret to')" -eq 0
kill_pid "$old_pid"
kill_pid "$bravo_pid"

# The new key (delta's TLS key, charlie's OpenPGP key) is served, after the delay.
run_client "$SCRATCH/new.out" delta
new_pid=$client_pid
wait_output "$(vg_scale 10)" "$SCRATCH/new.out"
check "the new key gets charlie's secret" test "$(cat "$SCRATCH/new.out")" = "$(secret_of charlie)"
kill_pid "$new_pid"
check "the server is still running" alive "$MANDOS_PID"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
