#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# A change that must be saved at once (a client's host changed by a reload) reaches
# the journal within the iteration after it even while a checker storm keeps
# the loop busy without a pause (docs/STATE.md, Writing: "acknowledged" is one
# fdatasync after the iteration that made the change), and the checkers'
# own time changes go to the journal too instead of forcing a snapshot of
# the whole state every few seconds.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

N=2000
if [ -n "${MANDOS_VALGRIND:-}" ]; then
	# valgrind makes each spawn a fork of the whole emulated server:
	# 20 a second already keep this machine busy.
	N=20
fi
CONFDIR="$SCRATCH/conf"
STATEDIR=$(new_statedir)
SJ="$TEST_DIR/state_journal.py"
write_config "$CONFDIR" "$(client_section bravo)"
"$PY" - "$N" >>"$CONFDIR/clients.conf" <<'PY'
import os, sys
for i in range(int(sys.argv[1])):
    print(f"[c{i:04d}]\nkey_id = {os.urandom(32).hex()}\nsecret = aGk=\n"
          "interval = PT1S\ntimeout = PT1H\nchecker = true\n")
PY

server_starts

# bravo_saved: the journals (after the snapshot) have bravo's new host.
bravo_saved() {
	"$PY" "$SJ" records "$STATEDIR" 2>/dev/null | grep -q '"name": "bravo".*"host": "newhost"'
}

# Two seconds into the storm, a reload changes bravo's host.
sleep 2
sed -i 's/^host = bravo$/host = newhost/' "$CONFDIR/clients.conf"
kill -HUP "$MANDOS_PID"
if ! wait_until "$(vg_scale 20)" grep -q "Client bravo changed: host" "$MANDOS_LOG"; then
	not_ok "the reload changes bravo's host during the storm"
	finish
fi
t0=$(date +%s%N)
wait_until "$(vg_scale 10)" bravo_saved
saved_ms=$((($(date +%s%N) - t0) / 1000000))
started=$(grep -c "Starting checker 'true'" "$MANDOS_LOG")
diag "bravo's change reached the journal ${saved_ms} ms after the log line; $started checkers started so far"
check "a checker storm was running ($started checkers started)" test "$started" -ge "$N"
check "bravo's change is in the journal within $(vg_scale 1) s (${saved_ms} ms)" \
	test "$saved_ms" -lt "$(vg_scale 1000)"

# Let the storm go on: its time changes are records, never a snapshot
# of the whole state for want of a moment to write them in.
sleep "$(vg_scale 6)"
records=$("$PY" "$SJ" records "$STATEDIR" 2>/dev/null | wc -l)
bursts=$(grep -c "clients changed, saved by a snapshot" "$MANDOS_LOG")
diag "$records journal records; $bursts snapshots instead of records"
check "the storm's time changes are journal records ($records)" test "$records" -ge 100
check "no snapshot instead of the checkers' records ($bursts)" test "$bursts" -eq 0
stop_mandos
check "the state loads: $N + 1 clients" "$PY" "$SJ" check "$STATEDIR" $((N + 1))
check "bravo is saved with its new host" test "$("$PY" "$SJ" get "$STATEDIR" bravo host 2>&1)" = '"newhost"'
finish
