#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Taking over from the reference server (docs/STATE.md, "Importing the
# reference server's clients.pickle"): the real /usr/sbin/mandos runs on a
# private bus, an admin disables bravo, sets alpha's secret and timeout and
# removes charlie and delta with the real mandos-ctl, and the reference
# writes clients.pickle at SIGTERM; delta then leaves clients.conf. Our
# server then starts on the same configuration and state directory: bravo
# is still disabled and gets nothing, alpha gets the secret set over D-Bus,
# charlie stays removed, `mandos-ctl -v` shows what the reference showed
# (times aside), our state is written and the pickle is kept as
# clients.pickle.imported. Then: a truncated pickle, and --import-pickle.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_common
require_dbus
[ -x "$REFERENCE_MANDOS" ] || skip "needs the reference server $REFERENCE_MANDOS (Debian package mandos)"

CONFDIR="$SCRATCH/conf"
# No checker runs (every 20 days; the reference cannot time more than 49).
# charlie is removed over D-Bus and stays configured; delta (charlie's keys)
# is removed over D-Bus and then deleted from clients.conf, which makes the
# reference itself crash at its next start.
sections=("$(client_section alpha 'interval = 20d' 'checker = true')"
	"$(client_section bravo 'interval = 20d' 'checker = true')"
	"$(client_section charlie 'interval = 20d' 'checker = true')")
write_config "$CONFDIR" "${sections[@]}" "$(printf '%s\n' "${sections[2]}" | sed 's/^\[charlie\]$/[delta]/')"

# A new secret for alpha, encrypted to alpha's key as mandos-keygen does it.
keygen_secret alpha 'the D-Bus secret of alpha' "$SCRATCH/newsecret.bin"

# ---------------------------------------------------------------- the reference
rctl() { DBUS_SYSTEM_BUS_ADDRESS="$REF_BUS" timeout 30 mandos-ctl "$@"; }
# reference_session: the reference server on a fresh STATEDIR, changed with
# mandos-ctl, then stopped; true if it wrote its clients.pickle.
reference_session() {
	STATEDIR=$(new_statedir)
	start_reference --statedir "$STATEDIR" || bail "the reference server did not start (see reference.log)"
	check "reference: mandos-ctl -d bravo" rctl -d bravo
	check "reference: mandos-ctl --secret FILE alpha" rctl --secret "$SCRATCH/newsecret.bin" alpha
	check "reference: mandos-ctl --timeout PT7H alpha" rctl --timeout PT7H alpha
	check "reference: mandos-ctl --deny-by-default bravo" rctl --deny-by-default bravo
	check "reference: mandos-ctl --remove charlie delta" rctl --remove charlie delta
	rctl -v | "$PY" "$DBUS_CHECK" normalize --sort-rows >"$SCRATCH/ctl-v.reference"
	rctl -v alpha bravo >"$SCRATCH/ctl-v.reference.raw"
	check "reference: alpha is served its D-Bus secret" \
		test "$(fetch alpha "[::1]:$REF_PORT" 10)" = "the D-Bus secret of alpha"
	kill -TERM "$REF_PID"
	wait_pid "$REF_PID" 20 || diag "the reference did not exit within 20 s"
	test -s "$STATEDIR/clients.pickle"
}
# The reference, stopped on a busy machine, has once exited without writing
# its pickle: that is the reference's trouble, not what this test is about.
# One more session then, and the first one's log is shown.
if ! reference_session; then
	diag "the reference wrote no clients.pickle; its log ends:"
	tail -n 15 "$REF_LOG" | sed 's/^/#   /'
	cp "$REF_LOG" "$SCRATCH/reference.log.1"
	reference_session || true
fi
check "the reference wrote clients.pickle" test -s "$STATEDIR/clients.pickle"
cp "$STATEDIR/clients.pickle" "$SCRATCH/clients.pickle.orig"
write_config "$CONFDIR" "${sections[@]}"

# ---------------------------------------------------------------- ours
if ! start_mandos_dbus; then
	not_ok "our server starts on the reference's state"
	show_logs
	finish
fi
ok "our server starts on the reference's state"
# (The port and the bus name are ours before the state is read: wait for the import.)
assert_log "Imported the reference server's state from $STATEDIR/clients.pickle" 30
expect_prop "bravo, disabled with mandos-ctl -d on the reference, is still disabled" bravo Enabled "b false"
expect_nothing "bravo gets nothing" bravo "[::1]:$PORT" 3
check "alpha gets the secret set over D-Bus on the reference" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the D-Bus secret of alpha"
expect_prop "alpha's timeout set on the reference is kept" alpha Timeout "t 25200000"
expect_prop "bravo's approved-by-default set on the reference is kept" bravo ApprovedByDefault "b false"
ctl -v | "$PY" "$DBUS_CHECK" normalize --sort-rows >"$SCRATCH/ctl-v.ours"
if cmp -s "$SCRATCH/ctl-v.reference" "$SCRATCH/ctl-v.ours"; then
	ok "mandos-ctl -v shows what the reference showed (times aside)"
else
	not_ok "mandos-ctl -v shows what the reference showed (times aside)"
	diff -u "$SCRATCH/ctl-v.reference" "$SCRATCH/ctl-v.ours" | sed 's/^/#   /' | head -30
fi
expect_nothing "charlie, removed over D-Bus on the reference, gets nothing" charlie "[::1]:$PORT" 3
check "charlie stays removed" sh -c "! DBUS_SYSTEM_BUS_ADDRESS='$BUS' mandos-ctl | grep -qw charlie"
check "delta, removed and then deleted from clients.conf, is simply gone" \
	sh -c "! DBUS_SYSTEM_BUS_ADDRESS='$BUS' mandos-ctl | grep -qw delta"
check "our state was written at once" test -s "$STATEDIR/clients.json"
check "the pickle is kept as clients.pickle.imported" cmp -s "$STATEDIR/clients.pickle.imported" "$SCRATCH/clients.pickle.orig"
check "no clients.pickle is left to import again" test ! -e "$STATEDIR/clients.pickle"
check "our state holds no D-Bus secret in the clear" sh -c "! grep -qaF 'the D-Bus secret of alpha' '$STATEDIR/clients.json'"

# A restart reads our state, not the pickle.
stop_mandos
start_mandos_dbus || bail "our server does not restart"
check "a restart does not import again" sh -c "! grep -qF 'Imported the reference' '$MANDOS_LOG'"
expect_prop "bravo is still disabled after a restart" bravo Enabled "b false"
expect_nothing "charlie is still removed after a restart" charlie "[::1]:$PORT" 3
check "alpha still gets the D-Bus secret after a restart" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the D-Bus secret of alpha"
stop_mandos

# A truncated pickle: refused, said so, left in place; we start from clients.conf.
STATEDIR=$(new_statedir)
half=$(($(stat -c %s "$SCRATCH/clients.pickle.orig") / 2))
head -c "$half" "$SCRATCH/clients.pickle.orig" >"$STATEDIR/clients.pickle"
cp "$STATEDIR/clients.pickle" "$SCRATCH/truncated.pickle"
start_mandos_dbus || bail "our server does not start with a truncated clients.pickle"
assert_log "ERROR: Could not import the reference server's state $STATEDIR/clients.pickle: truncated at byte $half"
check "the truncated pickle is left in place, untouched" cmp -s "$STATEDIR/clients.pickle" "$SCRATCH/truncated.pickle"
expect_prop "with it refused, bravo is as clients.conf says" bravo Enabled "b true"
stop_mandos

# The explicit command, on the reference's real pickle: 0, then 1 over our state.
STATEDIR=$(new_statedir)
"$MANDOS" --configdir "$CONFDIR" --statedir "$STATEDIR" --import-pickle "$SCRATCH/clients.pickle.orig" \
	>"$SCRATCH/import.1.log" 2>&1
check "mandos --import-pickle FILE exits 0" test $? -eq 0
check "… and writes our state" test -s "$STATEDIR/clients.json"
"$MANDOS" --configdir "$CONFDIR" --statedir "$STATEDIR" --import-pickle "$SCRATCH/clients.pickle.orig" \
	>"$SCRATCH/import.2.log" 2>&1
check "mandos --import-pickle FILE over our state exits 1" test $? -eq 1
"$MANDOS" --configdir "$CONFDIR" --statedir "$(new_statedir)" --import-pickle "$SCRATCH/truncated.pickle" \
	>"$SCRATCH/import.3.log" 2>&1
check "mandos --import-pickle of a truncated pickle exits 1" test $? -eq 1
check "… saying where it ends" grep -qF "truncated at byte $half" "$SCRATCH/import.3.log"

finish
