#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Setting Secret over D-Bus does not stall the loop (README.md, Security):
# the OpenPGP encryption for the state file (gpg, gpg-agent) runs off it.
# bench/mandos-load fetches at concurrency 10 from 10 clients while another
# client's Secret is set over and over (busctl, each call waiting for its
# reply); the slowest fetch stays under 100 ms. A run without Sets just
# before gives the machine's own slowest fetch: the bound is 100 ms or,
# on a machine too busy to meet it without any Set, that run's slowest plus
# 50 ms (a Set done inside the loop costs 150 ms and more: gpg's start and
# an agent's; under valgrind or the sanitizers, no bound). Whatever the build, the server's
# own loop-stall log shows no iteration of 100 ms or more. Then the last Secret set is what the wire serves; and a Set
# still under way when the server is told to stop is answered, and served
# after a restart (its ciphertext reached the state file).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus
LOAD="$BUILD_DIR/bench/mandos-load"
[ -x "$LOAD" ] || skip "no $LOAD"

N=10
SECONDS_RUN=8
KEYS="$SCRATCH/keys"
"$LOAD" keygen --count $((N + 1)) >"$KEYS" || bail "mandos-load keygen failed"

CONFDIR="$SCRATCH/conf"
mkdir -p "$CONFDIR"
echo "[DEFAULT]" >"$CONFDIR/mandos.conf"
{
	printf '[DEFAULT]\nchecker = true\ninterval = 1d\ntimeout = 2d\n\n'
	i=0
	while read -r key_id _ _ secret; do
		printf '[c%02d]\nkey_id = %s\nfingerprint = %s\nsecret = %s\n\n' "$i" "$key_id" \
			"$(printf '%s' "${key_id:0:40}" | tr a-f A-F)" \
			"$(printf '%s' "$secret" | xxd -r -p | base64 -w0)"
		i=$((i + 1))
	done <"$KEYS"
} >"$CONFDIR/clients.conf"
# The last client is not in the load: its Secret changes.
TARGET=c$(printf '%02d' "$N")
head -n "$N" "$KEYS" >"$SCRATCH/load-keys"

STATEDIR=$(new_statedir)
if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"
PATH_TARGET=$(busctl --address="$BUS" call "$BUS_NAME" / se.recompile.Mandos GetAllClients |
	tr ' ' '\n' | tr -d '"' | grep "/$TARGET\$")
[ -n "$PATH_TARGET" ] || bail "no object path for $TARGET"

# load: mandos-load for SECONDS_RUN s; prints its JSON line.
load() {
	timeout $((SECONDS_RUN + 30)) "$LOAD" run --keys "$SCRATCH/load-keys" --host ::1 --port "$PORT" \
		--clients "$N" --concurrency 10 --seconds "$SECONDS_RUN" --timeout 10
}
field() { "$PY" -c 'import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])[sys.argv[1]])' "$1"; }

quiet=$(load)
quiet_max=$(field max_ms <<<"$quiet")
diag "without Sets: $quiet"
bound=$("$PY" -c 'import sys; q = float(sys.argv[1]); print(100 if q < 50 else q + 50)' "$quiet_max")

# set_secret HEX: busctl's Set of TARGET's Secret to the bytes of HEX.
set_secret() {
	# shellcheck disable=SC2046 # one argument per byte
	timeout 20 busctl --address="$BUS" set-property "$BUS_NAME" "$PATH_TARGET" se.recompile.Mandos.Client \
		Secret ay $((${#1} / 2)) $(printf '%s' "$1" | sed 's/../0x& /g')
}

log_mark=$(wc -l <"$MANDOS_LOG")
load >"$SCRATCH/load.json" &
LOAD_PID=$!
remember_pid "$LOAD_PID"
sets=0 failed=0 last=
deadline=$((SECONDS + SECONDS_RUN - 1))
sleep 0.5
while [ $SECONDS -lt $deadline ] && [ $sets -lt 40 ]; do
	last=$(head -c 32 /dev/urandom | xxd -p -c 64)
	if set_secret "$last"; then
		sets=$((sets + 1))
	else
		failed=$((failed + 1))
	fi
done
wait "$LOAD_PID"
loaded=$(cat "$SCRATCH/load.json")
diag "with $sets Sets of Secret: $loaded"
check "$sets Sets of Secret answered, none failed" test "$sets" -ge 1 -a "$failed" = 0
# served_right JSON: the run completed fetches, none failed, none wrong.
served_right() {
	[ "$(field completed <<<"$1")" -gt 0 ] && [ "$(field failed <<<"$1")" = 0 ] &&
		[ "$(field wrong <<<"$1")" = 0 ]
}
check "the load run fetched and got only right secrets" served_right "$loaded"
max=$(field max_ms <<<"$loaded")
# The server's own measure (src/loop.c logs each loop iteration over 50 ms
# and what ran in it): while Secret was set, no iteration held the loop for
# 100 ms or more but for a fetch itself (the load's own TLS work, slow
# under valgrind and the sanitizers). A Set done inside the loop (gpg's
# start, an agent's) does.
stalls=$(tail -n +$((log_mark + 1)) "$MANDOS_LOG" | grep -E 'Event loop stalled for [0-9]{3,} ms' |
	grep -v 'by the connection from' | sed 's/.*DEBUG: //' | tr '\n' ';')
check "no loop iteration of 100 ms or more while Secret was set${stalls:+ (${stalls})}" test -z "$stalls"
if [ "${MANDOS_VALGRIND:-}" = 1 ]; then
	diag "under valgrind: slowest fetch $max ms (no bound: valgrind slows the server's loop itself)"
elif ldd "$MANDOS" 2>/dev/null | grep -q libasan; then
	# The sanitizers slow every fetch, and gpg's CPU competes with the load
	# on a small machine: the stall check above is the measure there.
	diag "under the sanitizers: slowest fetch $max ms (without Sets: $quiet_max ms; no bound)"
else
	check "slowest fetch while Secret is set: $max ms < $bound ms (without Sets: $quiet_max ms)" \
		"$PY" -c 'import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))' "$max" "$bound"
fi

# A keys line for TARGET with the last Secret set.
tail -n 1 "$KEYS" | awk -v s="$last" '{ print $1, $2, $3, s }' >"$SCRATCH/target-keys"
fetch_target() { "$LOAD" run --keys "$SCRATCH/target-keys" --host ::1 --port "$PORT" --clients 1 --count 1 --timeout 10; }
check "the last Secret set is what $TARGET is served" served_right "$(fetch_target)"

# A Set still being encrypted when the server is told to stop is answered,
# and saved.
last=$(head -c 32 /dev/urandom | xxd -p -c 64)
set_secret "$last" >"$SCRATCH/last-set.out" 2>&1 &
SET_PID=$!
sleep 0.1
stop_mandos
check "server stops cleanly" [ "$MANDOS_RC" = 0 ]
wait "$SET_PID"
check "a Set under way when the server stops is answered" [ $? = 0 ]
tail -n 1 "$KEYS" | awk -v s="$last" '{ print $1, $2, $3, s }' >"$SCRATCH/target-keys"
if start_mandos_dbus; then
	check "after a restart, $TARGET is served the last Secret set" served_right "$(fetch_target)"
else
	not_ok "server restarts"
fi
finish
