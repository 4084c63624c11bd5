#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# The signals of the D-Bus API (mandos-dbus-api(7), CHANGE SIGNALS), seen by
# dbus-monitor on a private system bus: one approval and one denial with the
# real mandos-client tell the same story as the reference's traces
# (reference/signals-*.txt); every client signal goes out on both client
# interfaces, every change as PropertyChanged twice and PropertiesChanged once;
# start-up, removal, unknown clients, checkers, enabling and the write-only
# Secret each send what the reference sends.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'interval = 30d' 'checker = true')" \
	"$(client_section bravo 'interval = 30d' 'checker = true')"
ensure_keys stranger

# events FILE: our trace's events, one per line; fails on a malformed signal.
events() { "$PY" "$DBUS_CHECK" events "$1"; }

# has_sequence FILE LINE...: the events of FILE contain the LINEs in this order
# (not necessarily adjacent); a LINE ending in "*" matches any line it begins.
has_sequence() {
	local file=$1
	shift
	events "$file" | "$PY" -c '
import sys
want = sys.argv[1:]
i = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    if i < len(want) and (line == want[i] or
                          want[i].endswith("*") and line.startswith(want[i][:-1])):
        i += 1
if i < len(want):
    print("# missing from here on: %r" % want[i:])
sys.exit(i < len(want))' "$@"
}

# ------------------------------------------------------------------ start-up

start_bus mandos BUS
start_monitor "$SCRATCH/startup.txt" "type='signal'" || bail "no dbus-monitor"
if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"
stop_monitor
check "start-up: InterfacesAdded, then ClientAdded on both interfaces, for each client, in order" \
	has_sequence "$SCRATCH/startup.txt" \
	'org.freedesktop.DBus.ObjectManager.InterfacesAdded("/clients/alpha", *' \
	'ClientAdded("/clients/alpha")' \
	'org.freedesktop.DBus.ObjectManager.InterfacesAdded("/clients/bravo", *' \
	'ClientAdded("/clients/bravo")'
# The first InterfacesAdded: the four interfaces, all readable properties on
# both client interfaces, never Secret.
awk '/member=InterfacesAdded/ { n++ } n == 1 && /^signal/ && !/member=InterfacesAdded/ { exit } n == 1' \
	"$SCRATCH/startup.txt" >"$SCRATCH/added.txt"
for iface in se.recompile.Mandos.Client se.bsnet.fukt.Mandos.Client \
	org.freedesktop.DBus.Properties org.freedesktop.DBus.Introspectable; do
	check "InterfacesAdded lists $iface" grep -qF "string \"$iface\"" "$SCRATCH/added.txt"
done
missing=
for p in ApprovalDelay ApprovalDuration ApprovalPending ApprovedByDefault Checker CheckerRunning \
	Created Enabled Expires ExtendedTimeout Fingerprint Host Interval KeyID LastApprovalRequest \
	LastCheckedOK LastCheckerStatus LastEnabled Name ObjectPath Timeout; do
	[ "$(grep -cF "string \"$p\"" "$SCRATCH/added.txt")" = 2 ] || missing="$missing $p"
done
check "InterfacesAdded has every readable property on both client interfaces${missing:+ (not:$missing)}" \
	test -z "$missing"
check "InterfacesAdded never carries Secret" bash -c "! grep -qF 'string \"Secret\"' '$SCRATCH/added.txt'"

# ------------------------------------------------------- approval, denial

# answer_request NAME ACTION: what the reference's traces record: mandos-ctl
# makes alpha deny by default with a 10 s delay, the real mandos-client
# connects, and once NeedApproval is out, mandos-ctl ACTION (-A or -D)
# answers. The trace goes to $SCRATCH/NAME.txt, the client's output to
# $SCRATCH/NAME.out; the client is left running (FETCH_PID).
answer_request() {
	local name=$1 action=$2
	start_monitor "$SCRATCH/$name.txt" || bail "no dbus-monitor"
	check "mandos-ctl --deny-by-default --approval-delay=PT10S" ctl --deny-by-default --approval-delay=PT10S alpha
	fetch_bg alpha "$SCRATCH/$name.out" 25
	if wait_file_has "$SCRATCH/$name.txt" "member=NeedApproval" 10; then
		ok "NeedApproval is sent while the client waits"
		check "mandos-ctl $action" ctl "$action" alpha
	else
		not_ok "NeedApproval is sent while the client waits"
	fi
}

# same_story NAME: back to approval by default without delay, then compare
# the trace with reference/signals-NAME.txt.
same_story() {
	local name=$1
	check "mandos-ctl --approve-by-default --approval-delay=PT0S" ctl --approve-by-default --approval-delay=PT0S alpha
	stop_monitor
	if "$PY" "$DBUS_CHECK" trace "$TEST_DIR/reference/signals-$name.txt" "$SCRATCH/$name.txt" \
		>"$SCRATCH/$name.check" 2>&1; then
		ok "$name: the same signals, in the same order, as the reference"
	else
		not_ok "$name: the same signals, in the same order, as the reference"
		sed 's/^/#   /' "$SCRATCH/$name.check"
	fi
}

answer_request approve -A
wait_pid "$FETCH_PID" 15 || kill_pid "$FETCH_PID"
check "the approved client got its secret" test "$(cat "$SCRATCH/approve.out")" = "$(secret_of alpha)"
same_story approve

# An Approve opens a window of ApprovalDuration (1 s) in which any request is
# granted at once (mandos(8), APPROVAL, as the reference): let it close before
# the denial, or a fast run would see GotSecret instead of NeedApproval.
sleep 1.5
answer_request deny -D
check "Rejected(\"Denied\") is sent" wait_file_has "$SCRATCH/deny.txt" 'string "Denied"' 5
sleep 0.5
kill_pid "$FETCH_PID"
check "the denied client got nothing" test ! -s "$SCRATCH/deny.out"
same_story deny

# ------------------------------------------------------- an unknown client

start_monitor "$SCRATCH/notfound.txt" || bail "no dbus-monitor"
expect_nothing "an unknown client gets nothing" stranger "[::1]:$PORT" 3
stop_monitor
check "ClientNotFound(key ID, address) on both server interfaces" \
	has_sequence "$SCRATCH/notfound.txt" "ClientNotFound(\"$(key_id_of stranger)\", \"::1\")"

# ------------------------------------------------------------------ checkers

start_monitor "$SCRATCH/checker.txt" || bail "no dbus-monitor"
check "Set Checker 'exit 3'" bctl set-property "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" Checker s 'exit 3'
check "mandos-ctl --start-checker" ctl --start-checker alpha
wait_file_has "$SCRATCH/checker.txt" "member=CheckerCompleted" 5
check "Set Checker 'true'" bctl set-property "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" Checker s true
check "StartChecker()" bctl call "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" StartChecker
sleep 1
stop_monitor
check "a failing checker: CheckerRunning, CheckerStarted, ..., LastCheckerStatus, CheckerCompleted(3, 768, cmd)" \
	has_sequence "$SCRATCH/checker.txt" 'prop Checker=exit 3' 'prop CheckerRunning=true' \
	'CheckerStarted("exit 3")' 'prop CheckerRunning=false' 'prop LastCheckerStatus=3' \
	'CheckerCompleted(3, 768, "exit 3")'
check "a successful checker: ..., LastCheckerStatus, LastCheckedOK, Expires, CheckerCompleted(0, 0, cmd)" \
	has_sequence "$SCRATCH/checker.txt" 'prop Checker=true' 'prop CheckerRunning=true' \
	'CheckerStarted("true")' 'prop CheckerRunning=false' 'prop LastCheckerStatus=0' \
	'prop LastCheckedOK=<time>' 'prop Expires=<time>' 'CheckerCompleted(0, 0, "true")'

# A checker's %(dbus_object_path)s is the object's path (computed from the
# name, not stored).
start_monitor "$SCRATCH/expand.txt" || bail "no dbus-monitor"
check "Set Checker 'true %(dbus_object_path)s'" \
	bctl set-property "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" Checker s 'true %(dbus_object_path)s'
check "StartChecker()" bctl call "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" StartChecker
wait_file_has "$SCRATCH/expand.txt" "member=CheckerCompleted" 5
stop_monitor
check "%(dbus_object_path)s expanded to /clients/alpha" \
	has_sequence "$SCRATCH/expand.txt" 'CheckerStarted("true /clients/alpha")'
check "Set Checker 'true' again" bctl set-property "$BUS_NAME" /clients/alpha "$CLIENT_IFACE" Checker s true

# ---------------------------------------------- enable, Secret, unchanged values

start_monitor "$SCRATCH/misc.txt" || bail "no dbus-monitor"
check "mandos-ctl --disable" ctl --disable alpha
check "mandos-ctl --enable" ctl --enable alpha
check "mandos-ctl --enable again" ctl --enable alpha
check "mandos-ctl --host (same value)" ctl --host alpha alpha
printf 'new secret' >"$SCRATCH/secret.bin"
check "mandos-ctl --secret" ctl --secret "$SCRATCH/secret.bin" bravo
stop_monitor
check "disable: Expires emptied, Enabled=false" \
	has_sequence "$SCRATCH/misc.txt" 'prop Expires=' 'prop Enabled=false'
check "enable: Enabled=true, LastEnabled, Expires" \
	has_sequence "$SCRATCH/misc.txt" 'prop Enabled=true' 'prop LastEnabled=<time>' 'prop Expires=<time>'
check "setting a value to what it is sends nothing" \
	test "$(events "$SCRATCH/misc.txt" | grep -c -e '^prop Enabled=true' -e '^prop Host=')" = 1
check "Secret: only PropertiesChanged with Secret invalidated, no value" \
	test "$(events "$SCRATCH/misc.txt" | grep -c -e Secret)" = 1
check "...which is that invalidation" has_sequence "$SCRATCH/misc.txt" 'invalidated Secret'
check "the trace has no value of Secret" bash -c "! grep -q 'PropertyChanged' '$SCRATCH/misc.txt' ||
	! grep -A1 'member=PropertyChanged' '$SCRATCH/misc.txt' | grep -qF '\"Secret\"'"

# ------------------------------------------------------------------ removal

start_monitor "$SCRATCH/remove.txt" || bail "no dbus-monitor"
check "mandos-ctl --remove" ctl --remove bravo
stop_monitor
check "removal: InterfacesRemoved(path, the four interfaces), then ClientRemoved(path, name) on both" \
	has_sequence "$SCRATCH/remove.txt" \
	'org.freedesktop.DBus.ObjectManager.InterfacesRemoved("/clients/bravo", "se.recompile.Mandos.Client", "se.bsnet.fukt.Mandos.Client", "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable")' \
	'ClientRemoved("/clients/bravo", "bravo")'
check "the removed client's object is gone" bash -c "! busctl --address='$BUS' introspect '$BUS_NAME' /clients/bravo >/dev/null 2>&1"
check "the removed client is no longer listed" bash -c "! DBUS_SYSTEM_BUS_ADDRESS='$BUS' mandos-ctl | grep -q bravo"
server_alive_and_serving "after all that" alpha

stop_mandos TERM
finish
