#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# An Approve holds for approval_duration (man/mandos-clients.conf.5.xml),
# but only while the client stays enabled: disabling a client ends its
# approval window, so after it is enabled again a connection waits for a
# new decision instead of being served on the old Approve.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'interval = 20d' 'checker = true' 'approval_delay = PT3S' \
		'approved_by_default = False' 'approval_duration = PT1M')"
start_mandos_dbus || bail "server does not start with D-Bus"

# The window works: approved in advance, alpha is served at once (a
# connection without a decision would be refused after 3 s, not served).
ctl --approve alpha
expect_secret "approved in advance, alpha is served before the delay's end" alpha "[::1]:$PORT" "$(vg_scale 2)"

# Disabled and enabled again, within the window's minute.
ctl --disable alpha
ctl --enable alpha
expect_prop "alpha is enabled again" alpha Enabled "b true"
expect_nothing "after a disable, the old Approve no longer serves alpha" alpha "[::1]:$PORT" "$(vg_scale 2)"
check "the server sent alpha its secret once only" test "$(log_count 'Sending secret to alpha')" -eq 1
assert_log "Client alpha needs approval"
check "the server is still running" alive "$MANDOS_PID"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
