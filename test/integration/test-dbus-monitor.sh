#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Debian's mandos-monitor (mandos-dbus-api(7)) against our server, driven under
# tmux and read from the screen: it lists the clients, shows an approval
# request and approves it, disables and enables a client, shows an unknown
# client, a failed checker (with the time until expiry, parsed from Expires)
# and a removal, and quits without a Python traceback.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus
require_prog tmux
MANDOS_MONITOR=${MANDOS_MONITOR:-/usr/sbin/mandos-monitor}
[ -x "$MANDOS_MONITOR" ] || skip "needs $MANDOS_MONITOR (Debian package mandos)"

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'interval = 20d' 'checker = exit 3' \
		'approval_delay = PT30S' 'approved_by_default = False')" \
	"$(client_section bravo 'interval = 20d' 'checker = true')"
ensure_keys stranger

if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"

TMUX_SOCKET="$SCRATCH/tmux.sock"
tm() { tmux -S "$TMUX_SOCKET" "$@"; }
screen() { tm capture-pane -p -t monitor 2>/dev/null; }

# wait_screen PATTERN [SECONDS]: until the screen shows PATTERN (fixed string).
wait_screen() {
	local pat=$1
	wait_until "${2:-10}" eval 'screen | grep -qF -- "$pat"'
}

# wait_screen_not PATTERN [SECONDS]: until the screen no longer shows PATTERN.
wait_screen_not() {
	local pat=$1
	wait_until "${2:-10}" eval '! screen | grep -qF -- "$pat"'
}

# on_screen DESC PATTERN [SECONDS]: check; show the screen when it fails.
on_screen() {
	if wait_screen "$2" "${3:-10}"; then
		ok "$1"
	else
		not_ok "$1 (no '$2' on the screen)"
		screen | sed 's/^/#   | /'
	fi
}

tm -f /dev/null new-session -d -s monitor -x 150 -y 40 \
	"env DBUS_SYSTEM_BUS_ADDRESS='$BUS' '$MANDOS_MONITOR' 2>'$SCRATCH/monitor.err'; sleep 600" ||
	bail "tmux did not start"
remember_pid "$(tm display-message -p '#{pid}')"

on_screen "mandos-monitor starts" "Mandos Monitor version 1.8.16"
# No checker has run yet (LastCheckerStatus -2), so each line counts down to
# Expires, which mandos-monitor parses with "%Y-%m-%dT%H:%M:%S.%f".
on_screen "...and lists alpha, with the time until it expires" \
	"alpha: A checker has failed! Time until client gets disabled: "
on_screen "...and bravo" "bravo: A checker has failed! Time until client gets disabled: "
check "...with no complaint about the server" bash -c "! tmux -S '$TMUX_SOCKET' capture-pane -p -t monitor |
	grep -q -e 'No Mandos server running' -e 'Server has no clients'"

# An approval request, approved from the keyboard ('a' on alpha, which has
# the focus: clients are sorted by name).
fetch_bg alpha "$SCRATCH/alpha.out" 40
on_screen "an approval request is shown" "alpha: Denial in 0:00:" 15
on_screen "...and logged" "Client alpha needs approval within 30.000000 seconds"
tm send-keys -t monitor a
on_screen "'a' approves: alpha gets its secret" "Client alpha received its secret" 15
wait_pid "$FETCH_PID" 15 || kill_pid "$FETCH_PID"
check "...the real client got it" test "$(cat "$SCRATCH/alpha.out")" = "$(secret_of alpha)"
if wait_screen_not "alpha: Denial in" 5; then ok "...and alpha no longer waits"; else not_ok "...and alpha no longer waits"; fi

# Disable and enable.
tm send-keys -t monitor -
on_screen "'-' disables alpha" "alpha: DISABLED"
expect_prop "...on the server" alpha Enabled "b false"
tm send-keys -t monitor +
on_screen "'+' enables alpha" "alpha: A checker has failed!"
expect_prop "...on the server" alpha Enabled "b true"

# A client the server does not know.
expect_nothing "an unknown client gets nothing" stranger "[::1]:$PORT" 2
on_screen "ClientNotFound is shown" "Client with address ::1 and key ID $(key_id_of stranger) could not be found"

# CheckedOK ('C'), then a failing checker ('s').
tm send-keys -t monitor C
on_screen "'C' (CheckedOK) on alpha" "alpha: enabled"
expect_prop "...LastCheckerStatus is 0" alpha LastCheckerStatus "n 0"
tm send-keys -t monitor s
on_screen "'s' starts alpha's checker, whose failure is shown" \
	'Checker for client alpha (command "exit 3") failed with exit code 3'
on_screen "...with the time until alpha expires" "alpha: A checker has failed! Time until client gets disabled:"

# Removal ('R' on alpha).
tm send-keys -t monitor R
if wait_screen_not "alpha:" 10; then
	ok "'R' removes alpha: it is gone from the screen"
else
	not_ok "'R' removes alpha: it is gone from the screen"
fi
check "...and from the server" bash -c "! busctl --address='$BUS' get-property $BUS_NAME /clients/alpha $CLIENT_IFACE Name >/dev/null 2>&1"
on_screen "...bravo stays" "bravo: A checker has failed!"

tm send-keys -t monitor q
sleep 1
check "mandos-monitor quits without a traceback" bash -c "! grep -q Traceback '$SCRATCH/monitor.err'"
if grep -q Traceback "$SCRATCH/monitor.err"; then sed 's/^/#   /' "$SCRATCH/monitor.err"; fi
tm kill-server 2>/dev/null

server_alive_and_serving "after mandos-monitor" bravo
stop_mandos TERM
finish
