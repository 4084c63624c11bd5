#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Persistent state (mandos(8), PERSISTENT STATE; docs/STATE.md): a client
# disabled by expiry stays disabled across a SIGKILL and a restart, from the
# journal that follows the snapshot; a torn last record is ignored and
# reported; the journal is compacted into a new snapshot that loads;
# SIGKILLs at random moments never leave a state that does not load, nor
# lose a change the server acknowledged; the state holds no secret and is
# mode 0600; a corrupt state file is set aside and the server serves.
#
# MANDOS_STATE_CLIENTS=N adds N synthetic clients (never connecting) for the
# crash rounds, MANDOS_STATE_ROUNDS their number (bench/bench.py --long runs
# 100,000 clients).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
STATEDIR=$(new_statedir)
STATE="$STATEDIR/clients.json"
SJ="$TEST_DIR/state_journal.py"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section bravo 'timeout = PT1S' 'interval = PT1S' 'checker = false')"

# state_ok DIR [N]: the state of DIR loads (snapshot and journals, as
# docs/STATE.md says), with N clients if given. Prints their count.
state_ok() {
	"$PY" "$SJ" check "$@"
}

# bulk_clients N FILE: N synthetic clients (random key IDs, ~950-byte
# secrets), in files of at most 10,000 clients: FILE-1.conf, FILE-2.conf...
bulk_clients() {
	"$PY" - "$1" "$2" <<'PY'
import base64, os, sys
n, base = int(sys.argv[1]), sys.argv[2]
for k in range(0, n, 10000):
    with open("%s-%d.conf" % (base, k // 10000 + 1), "w") as f:
        for i in range(k, min(n, k + 10000)):
            kid = os.urandom(32).hex().upper()
            f.write("[bulk%06d]\nkey_id = %s\nfingerprint = %s\nhost = bulk%d\nchecker = true\n"
                    "interval = 1d\ntimeout = 2d\nsecret = %s\n\n"
                    % (i, kid, kid[:40], i, base64.b64encode(os.urandom(950)).decode()))
PY
}

# ------------------------------------------------ disabled by expiry, then SIGKILL
start_mandos || bail "server does not start"
assert_log "Persistent state saved: a snapshot of 2 clients" 5
assert_log "Client bravo has expired and is disabled" 5
sleep 0.5
kill -KILL "$MANDOS_PID"
wait "$MANDOS_PID" 2>/dev/null
check "a state file was written" test -s "$STATE"
check "the state file is mode 0600" test "$(stat -c %a "$STATE")" = 600
check "the snapshot, written before the expiry, has bravo enabled" \
	test "$("$PY" "$SJ" snapshot "$STATEDIR" bravo enabled 2>&1)" = true
check "bravo's disabling is a record in the journal after it" \
	sh -c "'$PY' '$SJ' records '$STATEDIR' | grep -q '\"name\": \"bravo\".*\"enabled\": false'"
check "the journal is mode 0600" sh -c "test \"\$(stat -c %a '$STATEDIR'/clients.journal-* | sort -u)\" = 600"
check "snapshot and journal replayed: bravo is disabled" \
	test "$("$PY" "$SJ" get "$STATEDIR" bravo enabled 2>&1)" = false

# A crash tore the last record: half of a line, no newline.
journal="$STATEDIR/clients.journal-$(find "$STATEDIR" -name 'clients.journal-*' -printf '%f\n' |
	sed -n 's/^clients\.journal-\([0-9]*\)$/\1/p' | sort -n | tail -1)"
last=$(tail -n1 "$journal")
printf '%s' "${last:0:$((${#last} / 2))}" >>"$journal"
start_mandos || bail "server does not restart"
assert_log "Ignored a torn record at offset"
assert_log "Replayed "
expect_nothing "bravo, disabled by expiry before the SIGKILL, stays disabled (replayed from the journal)" \
	bravo "[::1]:$PORT" 3
assert_log "Client bravo is disabled"
expect_secret "alpha is still served after the restart" alpha "[::1]:$PORT"
check "the secret is in no state file" sh -c "! grep -rqF -- '$(secret_of alpha)' '$STATEDIR'"
secret_b64=$(sed -n '/^secret =/,/^[a-z_]* =/p' "$KEY_CACHE/alpha/section.conf" | sed -n '2p' | tr -d ' ')
check "a line of alpha's configured secret was found to look for" test "${#secret_b64}" -ge 40
check "no line of the configured secret is in the state" sh -c "! grep -rqF -- '$secret_b64' '$STATEDIR'"
assert_log "Persistent state saved: a snapshot of 2 clients" 5
check "the new snapshot has bravo disabled" test "$("$PY" "$SJ" snapshot "$STATEDIR" bravo enabled 2>&1)" = false
check "the journal with the torn record is gone once the snapshot holds it" test ! -e "$journal"
stop_mandos TERM
check "server exits 0 (got $MANDOS_RC)" test "$MANDOS_RC" = 0

# ------------------------------------------------ compaction
# Reloads that change all of 150 clients grow the journal past its share
# of the snapshot: a new snapshot is written, the old journals go, and
# the state loads with bravo still disabled.
mkdir -p "$CONFDIR/clients.d"
bulk_clients 150 "$CONFDIR/clients.d/bulk"
start_mandos || bail "server does not start with 152 clients"
assert_log "Persistent state saved: a snapshot of 152 clients" 5
gen0=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["journal"])' "$STATE")
for i in 1 2 3; do
	sed -i "s/^host = bulk\([0-9]*\).*/host = bulk\1-$i/" "$CONFDIR"/clients.d/bulk-*.conf
	kill -HUP "$MANDOS_PID"
	log_has "Reloaded the configuration: 152 clients" 5 || break
	sleep 0.3
done
check "a snapshot was written when the journal outgrew its share" \
	log_has "$(printf 'journal clients.journal-%d follows it' $((gen0 + 1)))" 5
sleep 0.5
kill -KILL "$MANDOS_PID"
wait "$MANDOS_PID" 2>/dev/null
check "the journals it covers are deleted" test ! -e "$STATEDIR/clients.journal-$gen0"
check "the compacted state loads: 152 clients" state_ok "$STATEDIR" 152
check "with bravo disabled" test "$("$PY" "$SJ" get "$STATEDIR" bravo enabled 2>&1)" = false
check "and the last reload's hosts" test "$("$PY" "$SJ" get "$STATEDIR" bulk000007 host 2>&1)" = '"bulk7-3"'
rm -f "$CONFDIR"/clients.d/bulk-*.conf

# ------------------------------------------------ crash consistency
# Each round: a reload changes alpha's host (a record in the journal), then a
# SIGKILL: in odd rounds at a random moment (of start-up, snapshot, reload,
# append), the state must load and hold one of the hosts it can; in even
# rounds after the reload was done plus the bound of one fdatasync
# (docs/STATE.md, Writing), the new host must be there.
# Not under valgrind: a SIGKILLed server gets no leak check, and its
# slowness there only turns the timing of the rounds into noise; the normal
# and sanitizer builds run them.
if [ -n "${MANDOS_VALGRIND:-}" ]; then
	n_bulk=0
	rounds=0
	diag "the SIGKILL rounds do not run under valgrind"
else
	n_bulk=${MANDOS_STATE_CLIENTS:-300}
	rounds=${MANDOS_STATE_ROUNDS:-40}
fi
ack_s=0.2
window_ms=$((100 + n_bulk / 25))      # start-up and a reload take longer with more clients
listen_s=$(vg_scale $((10 + n_bulk / 5000)))
[ "$n_bulk" -gt 0 ] && bulk_clients "$n_bulk" "$CONFDIR/clients.d/bulk"
n_all=$((n_bulk + 2))
# A reload through the root launcher hands the files over in one D-Bus
# message, which 100,000 clients' files outgrow: then the server runs as
# its user and reads them itself.
as_user=()
if [ "$n_bulk" -ge 20000 ]; then
	user=$(server_user)
	as_user=(setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups)
fi
bad=0
prev=$("$PY" "$SJ" get "$STATEDIR" alpha host | tr -d '"')
prev_n=$(state_ok "$STATEDIR")
for round in $(seq "$rounds"); do
	start_mandos_cmd "${as_user[@]}" "$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
		--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
	wait_listening "$PORT" "$listen_s" >/dev/null || { bad=$((bad + 1)); diag "round $round: no start"; continue; }
	sed -i "s/^host = .*alpha.*/host = alpha-round-$round/; s/^host = alpha$/host = alpha-round-$round/" "$CONFDIR/clients.conf"
	kill -HUP "$MANDOS_PID"
	acked=
	if [ $((round % 2)) = 0 ]; then
		if log_has "Reloaded the configuration" "$listen_s"; then
			acked=1
		else
			diag "round $round: the reload was not done within ${listen_s}s: $(grep -m1 'Reload refused' "$MANDOS_LOG")"
			bad=$((bad + 1))
		fi
		sleep "$ack_s"
	fi
	ms=$((RANDOM % window_ms))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
	kill -KILL "$MANDOS_PID"
	wait "$MANDOS_PID" 2>/dev/null
	if ! n=$(state_ok "$STATEDIR" 2>"$SCRATCH/state-error"); then
		diag "round $round: the state does not load: $(tail -n1 "$SCRATCH/state-error")"
		bad=$((bad + 1))
		continue
	fi
	host=$("$PY" "$SJ" get "$STATEDIR" alpha host | tr -d '"')
	if [ -n "$acked" ]; then
		[ "$host" = "alpha-round-$round" ] || { diag "round $round: acknowledged, but alpha's host is '$host'"; bad=$((bad + 1)); }
	else
		case "$host" in
		"$prev" | alpha-round-$round | alpha-round-$((round - 1))) ;;
		*) diag "round $round: alpha's host is '$host'"; bad=$((bad + 1)) ;;
		esac
	fi
	prev=$host
	# The clients of the files join the state with the start's snapshot;
	# before that lands (a while, at 100,000), the last state stands.
	case "$n" in
	"$n_all" | "$prev_n") ;;
	*) diag "round $round: $n clients, neither $n_all nor $prev_n"; bad=$((bad + 1)) ;;
	esac
	prev_n=$n
done
if [ "$rounds" -gt 0 ]; then
	check "$rounds SIGKILLs with $n_all clients: the state always loaded, nothing acknowledged lost ($bad bad)" \
		test "$bad" -eq 0
fi
start_mandos_cmd "$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
wait_listening "$PORT" "$listen_s" || bail "server does not restart after the crashes"
assert_log "Persistent state saved: a snapshot of $n_all clients" "$listen_s"
check "no temporary file remains once the server started" test "$(ls -A "$STATEDIR" | grep -c '^\.clients')" -eq 0
expect_secret "alpha is served after the crashes" alpha "[::1]:$PORT"
stop_mandos TERM
rm -f "$CONFDIR"/clients.d/bulk-*.conf

# ------------------------------------------------ corrupt state
printf '{"format": "mandos-state", "version": 1, "clients": [ {"name": ' >"$STATE"
start_mandos || bail "server does not start with a corrupt state file"
assert_log "Could not load persistent state $STATE"
check "the corrupt file is kept aside" sh -c "ls '$STATEDIR' | grep -q '^clients.json.corrupt-'"
check "the kept file is the corrupt one" sh -c "grep -q '\"clients\": \\[ {\"name\": \$' '$STATEDIR'/clients.json.corrupt-*"
check "the journals that followed it are kept aside with it" sh -c "ls '$STATEDIR' | grep -q '^clients.journal-[0-9]*.corrupt-'"
expect_secret "alpha is served with a corrupt state file" alpha "[::1]:$PORT"
stop_mandos TERM
check "a good state file replaced the corrupt one" state_ok "$STATEDIR" 2
finish
