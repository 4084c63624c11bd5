#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A reload through the root launcher (src/launcher.h) does not hold the
# server's loop while the launcher reads: started as root, the server
# serves its clients while the launcher is stuck on a clients.conf that
# does not come (a FIFO nobody writes yet), takes the configuration once
# it comes, and gives up on it after 10 s, with nothing changed, if it
# never does.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha)"
cp "$CONFDIR/clients.conf" "$SCRATCH/alpha.conf"
write_config "$CONFDIR" "$(client_section alpha)" "$(client_section bravo)"
mv "$CONFDIR/clients.conf" "$SCRATCH/alpha-bravo.conf"
cp "$SCRATCH/alpha.conf" "$CONFDIR/clients.conf"

start_mandos || bail "server does not start"
expect_secret "alpha is served" alpha "[::1]:$PORT"

# feed FILE: write FILE into the FIFO clients.conf, for the launcher
# stuck on it (bounded: nobody may be reading any more).
feed() {
	setsid timeout 5 sh -c 'cat "$1" >"$2"' sh "$1" "$CONFDIR/clients.conf" &
	remember_pid $!
	wait $!
}

rm "$CONFDIR/clients.conf"
mkfifo -m 0600 "$CONFDIR/clients.conf"
kill -HUP "$MANDOS_PID"
assert_log "Reloading the configuration (SIGHUP)"
sleep 0.3
check "the reload waits for the launcher" test "$(log_count 'Reloaded the configuration')" -eq 0
expect_secret "alpha is served while the launcher is stuck on clients.conf" alpha "[::1]:$PORT" 3
check "a second SIGHUP meanwhile" kill -HUP "$MANDOS_PID"
feed "$SCRATCH/alpha-bravo.conf"
assert_log "Reloaded the configuration: 2 clients, 1 added, 0 removed" 5
assert_log "Reloading the configuration again (a SIGHUP came during the reload)" 5
feed "$SCRATCH/alpha-bravo.conf"
wait_until 5 test "$(log_count 'Reloaded the configuration: 2 clients')" -ge 2
check "the second SIGHUP was one more reload, after the first" \
	test "$(log_count 'Reloaded the configuration: 2 clients')" -eq 2
expect_secret "bravo, from the configuration the launcher read late, is served" bravo "[::1]:$PORT"

# Never: after 10 s the reload is refused, nothing changes, and the loop
# served all along.
kill -HUP "$MANDOS_PID"
sleep 0.3
expect_secret "bravo is served while the launcher is stuck again" bravo "[::1]:$PORT" 3
assert_log "Reload refused: the launcher did not hand over the configuration; nothing changed" 12
check "the server is still running" alive "$MANDOS_PID"
expect_secret "alpha is still served after the refused reload" alpha "[::1]:$PORT"
feed "$SCRATCH/alpha.conf"

# The launcher, no longer stuck, serves the next reload.
rm "$CONFDIR/clients.conf"
cp "$SCRATCH/alpha.conf" "$CONFDIR/clients.conf"
kill -HUP "$MANDOS_PID"
assert_log "Reloaded the configuration: 1 clients, 0 added, 1 removed" 5
expect_nothing "bravo, removed by the last reload, gets nothing" bravo "[::1]:$PORT" 2

stop_mandos TERM
check "server exits 0 on SIGTERM after the reloads (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
