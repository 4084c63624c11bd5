#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Every mandos-ctl action (mandos-dbus-api(7)) against our server and, side by
# side, against the reference server (/usr/sbin/mandos) on a bus of its own,
# both with the same clients.conf: after each action, both give the same exit
# status and output, and the same `mandos-ctl -v` table and `-j` dump but for
# timestamps. The effect of each action on our server is checked on its own
# (busctl get-property, or a real mandos-client fetch).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus

CONFDIR="$SCRATCH/conf"
# Checkers every 20 days: none runs unless asked for (the reference cannot
# time more than 49 days, and expires an enabled client after two intervals).
write_config "$CONFDIR" \
	"$(client_section alpha 'interval = 20d' 'checker = true')" \
	"$(client_section bravo 'interval = 20d' 'checker = true')"

if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"
start_reference || bail "the reference server did not start (see reference.log)"
ok "the reference server starts on its own bus"

n=0
# run_ctl BUS TAG ARGS...: mandos-ctl on BUS; output in $SCRATCH/ctl.N.TAG.{out,err,rc}.
run_ctl() {
	local bus=$1 tag=$2 base
	shift 2
	base="$SCRATCH/ctl.$n.$tag"
	DBUS_SYSTEM_BUS_ADDRESS="$bus" timeout 30 mandos-ctl "$@" >"$base.out" 2>"$base.err"
	echo $? >"$base.rc"
	"$PY" "$DBUS_CHECK" normalize --sort-rows <"$base.out" >"$base.out.norm"
	"$PY" "$DBUS_CHECK" normalize <"$base.err" >"$base.err.norm"
}

# same_file DESC A B: ok if A and B are equal, else show the difference.
same_file() {
	if cmp -s "$2" "$3"; then
		ok "$1"
	else
		not_ok "$1"
		diff -u "$3" "$2" | sed 's/^/#   /' | head -40
	fi
}

# both DESC ARGS...: run mandos-ctl ARGS against both servers; the same exit
# status, stdout and stderr; then the same -j dump (mandos-ctl makes its -v
# table from the same values; "-v" steps below compare the tables too).
both() {
	local desc=$1 ours ref
	shift
	n=$((n + 1))
	run_ctl "$BUS" ours "$@"
	run_ctl "$REF_BUS" ref "$@"
	ours="$SCRATCH/ctl.$n.ours"
	ref="$SCRATCH/ctl.$n.ref"
	same_file "mandos-ctl $desc: exit status $(cat "$ours.rc") as the reference's" "$ours.rc" "$ref.rc"
	same_file "mandos-ctl $desc: output as the reference's" "$ours.out.norm" "$ref.out.norm"
	same_file "mandos-ctl $desc: errors as the reference's" "$ours.err.norm" "$ref.err.norm"
	n=$((n + 1))
	run_ctl "$BUS" ours -j
	run_ctl "$REF_BUS" ref -j
	if "$PY" "$DBUS_CHECK" json-equal "$SCRATCH/ctl.$n.ours.out" "$SCRATCH/ctl.$n.ref.out" \
		>"$SCRATCH/ctl.$n.json-check" 2>&1; then
		ok "...then mandos-ctl -j as the reference's"
	else
		not_ok "...then mandos-ctl -j as the reference's"
		sed 's/^/#   /' "$SCRATCH/ctl.$n.json-check"
	fi
}

# last_rc: our exit status in the last both().
last_rc() { cat "$SCRATCH/ctl.$((n - 1)).ours.rc"; }

# -------------------------------------------------------------- listing

both "(list)"
both "-v alpha" -v alpha
both "--dump-json bravo" --dump-json bravo
both "-v nosuch (unknown client)" -v nosuch
check "...which fails" test "$(last_rc)" = 1

# ------------------------------------------------------- enable, disable

both "--disable alpha" --disable alpha
expect_prop "...alpha is disabled" alpha Enabled "b false"
expect_prop "...and expires never" alpha Expires 's ""'
both "-V alpha (disabled)" -V alpha
check "...exits 1" test "$(last_rc)" = 1
both "--enable alpha" --enable alpha
expect_prop "...alpha is enabled" alpha Enabled "b true"
both "--is-enabled alpha (enabled)" --is-enabled alpha
check "...exits 0" test "$(last_rc)" = 0

# ------------------------------------------------------------ settings

both "--checker 'sleep 30' alpha" --checker 'sleep 30' alpha
expect_prop "...Checker is set" alpha Checker 's "sleep 30"'
both "--timeout PT10M alpha" --timeout PT10M alpha
expect_prop "...Timeout is 600000 ms" alpha Timeout "t 600000"
both "-t 1h bravo (the old syntax)" -t 1h bravo
expect_prop "...Timeout is 3600000 ms" bravo Timeout "t 3600000"
both "--extended-timeout PT20M alpha" --extended-timeout PT20M alpha
expect_prop "...ExtendedTimeout is 1200000 ms" alpha ExtendedTimeout "t 1200000"
both "--interval PT40M alpha (re-arms, and checks now)" --interval PT40M alpha
expect_prop "...Interval is 2400000 ms" alpha Interval "t 2400000"
both "--stop-checker alpha" --stop-checker alpha
expect_prop "...no checker runs" alpha CheckerRunning "b false"
both "--start-checker alpha" --start-checker alpha
expect_prop "...a checker runs" alpha CheckerRunning "b true"
both "--stop-checker alpha" --stop-checker alpha
expect_prop "...no checker runs" alpha CheckerRunning "b false"
both "-c 'ping -c1 %(host)s' alpha" -c 'ping -c1 %(host)s' alpha
expect_prop "...Checker is the template as given" alpha Checker 's "ping -c1 %(host)s"'
both "--approval-delay PT30S alpha" --approval-delay PT30S alpha
expect_prop "...ApprovalDelay is 30000 ms" alpha ApprovalDelay "t 30000"
both "--approval-duration PT5S alpha" --approval-duration PT5S alpha
expect_prop "...ApprovalDuration is 5000 ms" alpha ApprovalDuration "t 5000"
both "--deny-by-default alpha" --deny-by-default alpha
expect_prop "...ApprovedByDefault is false" alpha ApprovedByDefault "b false"
both "--approve-by-default alpha" --approve-by-default alpha
expect_prop "...ApprovedByDefault is true" alpha ApprovedByDefault "b true"
both "-H alpha.example alpha" -H alpha.example alpha
expect_prop "...Host is set" alpha Host 's "alpha.example"'
both "--host alpha alpha" --host alpha alpha
both "--bump-timeout alpha" --bump-timeout alpha
check "...LastCheckedOK is now ($(prop alpha LastCheckedOK))" \
	bash -c "busctl --address='$BUS' get-property $BUS_NAME /clients/alpha $CLIENT_IFACE LastCheckedOK |
		grep -Eq '^s \"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\"\$'"
expect_prop "...and LastCheckerStatus 0" alpha LastCheckerStatus "n 0"
both "--approval-delay PT0S --approval-duration PT1S alpha" --approval-delay PT0S --approval-duration PT1S alpha
both "several at once: --interval, --timeout, --host on alpha and bravo" \
	-i PT50M -t PT15M -H same.example alpha bravo
expect_prop "...alpha's Host" alpha Host 's "same.example"'
expect_prop "...bravo's Timeout" bravo Timeout "t 900000"

both "-v (after the settings)" -v

# ---------------------------------------------------- approve and deny

both "--approve alpha (nobody waiting)" --approve alpha
both "--deny alpha (nobody waiting)" --deny alpha
# Their effect, on both servers at once: bravo (deny by default) waits for
# approval on each, gets its secret when approved, and nothing when denied.
both "--deny-by-default --approval-delay PT20S --approval-duration PT10S bravo" \
	--deny-by-default --approval-delay PT20S --approval-duration PT10S bravo
# approve_or_deny ACTION OUT: bravo connects to both servers; once both wait,
# mandos-ctl ACTION bravo on both. Sets OURS_FETCH, REF_FETCH.
approve_or_deny() {
	local action=$1 out=$2 seen_ours seen_ref
	seen_ours=$(log_count 'Client bravo needs approval')
	seen_ref=$(grep -cF 'Client bravo needs approval' "$REF_LOG")
	fetch_bg bravo "$SCRATCH/$out.ours" 20 "$PORT"
	OURS_FETCH=$FETCH_PID
	fetch_bg bravo "$SCRATCH/$out.ref" 20 "$REF_PORT"
	REF_FETCH=$FETCH_PID
	wait_until 10 eval 'log_count_above "Client bravo needs approval" "$seen_ours" 0 &&
		[ "$(grep -cF "Client bravo needs approval" "$REF_LOG")" -gt "$seen_ref" ]'
	check "bravo waits for approval on both servers" \
		test "$(log_count 'Client bravo needs approval')" -gt "$seen_ours" -a \
		"$(grep -cF 'Client bravo needs approval' "$REF_LOG")" -gt "$seen_ref"
	check "mandos-ctl $action bravo (ours)" ctl "$action" bravo
	check "mandos-ctl $action bravo (reference)" \
		env DBUS_SYSTEM_BUS_ADDRESS="$REF_BUS" mandos-ctl "$action" bravo
}
approve_or_deny --approve approved
wait_pid "$OURS_FETCH" 15 || kill_pid "$OURS_FETCH"
wait_pid "$REF_FETCH" 15 || kill_pid "$REF_FETCH"
check "...bravo got its secret from us" test "$(cat "$SCRATCH/approved.ours")" = "$(secret_of bravo)"
check "...and from the reference" test "$(cat "$SCRATCH/approved.ref")" = "$(secret_of bravo)"
both "-v bravo (after an approval)" -v bravo
sleep 10 # the approval window ends
approve_or_deny --deny denied
check "...we refuse bravo" log_has "Client bravo was not approved" 5
check "...the reference refuses bravo" log_has "Client bravo was not approved" 5 "$REF_LOG"
kill_pid "$OURS_FETCH"
kill_pid "$REF_FETCH"
check "...bravo got nothing from us" test ! -s "$SCRATCH/denied.ours"
check "...nor from the reference" test ! -s "$SCRATCH/denied.ref"
both "-v bravo (after a denial)" -v bravo
both "--approve-by-default --approval-delay PT0S --approval-duration PT1S bravo" \
	--approve-by-default --approval-delay PT0S --approval-duration PT1S bravo

# --------------------------------------------------------------- secret

# A new secret for alpha, encrypted to alpha's key as mandos-keygen does it.
keygen_secret alpha 'a brand new secret' "$SCRATCH/newsecret.bin"
both "--secret FILE alpha" --secret "$SCRATCH/newsecret.bin" alpha
got=$(fetch alpha "[::1]:$PORT" 10)
check "...alpha now gets the new secret" test "$got" = "a brand new secret"

# ---------------------------------------------------------- all, remove

both "--verbose (after approval, denial, new secret)" --verbose
both "--all --disable" --all --disable
expect_prop "...alpha is disabled" alpha Enabled "b false"
expect_prop "...bravo is disabled" bravo Enabled "b false"
both "-a -e" -a -e
expect_prop "...alpha is enabled" alpha Enabled "b true"
expect_prop "...bravo is enabled" bravo Enabled "b true"
both "--remove bravo" --remove bravo
check "...bravo's object is gone" bash -c "! busctl --address='$BUS' get-property $BUS_NAME /clients/bravo $CLIENT_IFACE Name >/dev/null 2>&1"
both "-V bravo (removed)" -V bravo
check "...which fails" test "$(last_rc)" = 1
both "-D -r alpha (deny moved before remove)" -D -r alpha
both "(list with no clients)"

stop_mandos TERM
finish
