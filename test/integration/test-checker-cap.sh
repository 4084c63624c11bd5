#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# 2,000 clients checked every 2 s by `sleep 1`: the checker processes never
# exceed max_checkers, every client is checked, and a real mandos-client is
# served within 1 s meanwhile (mandos(8), CHECKERS; 10,000 clients must not mean
# 10,000 processes).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

N=2000
CAP=100
if [ -n "${MANDOS_VALGRIND:-}" ]; then
	# Under valgrind the server starts a few checkers a second, not
	# hundreds: 200 clients and a cap of 10, which that rate still reaches.
	N=200
	CAP=10
fi
CONFDIR="$SCRATCH/conf"
MANDOS_CONF_EXTRA="max_checkers = $CAP" write_config "$CONFDIR" "$(client_section alpha 'checker = true')"
"$PY" - "$N" >>"$CONFDIR/clients.conf" <<'PY'
import os, sys
for i in range(int(sys.argv[1])):
    print(f"[c{i:04d}]\nkey_id = {os.urandom(32).hex()}\nsecret = aGk=\n"
          "interval = PT2S\ntimeout = PT1H\nchecker = sleep 1\n")
PY

if ! start_mandos; then
	not_ok "server starts with $N clients"
	finish
fi
ok "server starts with $N clients"

# Sample the server's children (its checkers) every 0.1 s for up to 60 s,
# until every client has been checked.
max=0
served_ms=
start=$(date +%s)
while [ $(($(date +%s) - start)) -lt 60 ]; do
	# (not the launcher, the server's child that stays root: src/launcher.h)
	# (nor a snapshot writer of the state: src/state-writer.h)
	n=$(ps -o uid=,comm= --ppid "$MANDOS_PID" | awk '$1 != 0 && $2 != "mandos-snapshot"' | wc -l)
	[ "$n" -gt "$max" ] && max=$n
	if [ -z "$served_ms" ] && [ $(($(date +%s) - start)) -ge 3 ]; then
		t0=$(date +%s%N)
		got=$(fetch alpha "[::1]:$PORT" "$(vg_scale 5)")
		served_ms=$((($(date +%s%N) - t0) / 1000000))
		check "alpha gets its secret during the checker storm" test "$got" = "$(secret_of alpha)"
	fi
	checked=$(grep -o "Starting checker 'sleep 1' for c[0-9]*" "$MANDOS_LOG" | sort -u | wc -l)
	[ "$checked" -ge "$N" ] && [ -n "$served_ms" ] && break
	sleep 0.1
done
diag "at most $max checker processes; $checked of $N clients checked; fetch took ${served_ms:-?} ms"
check "checker processes never exceeded $CAP (max $max)" test "$max" -le "$CAP"
check "the cap was reached: checkers run in parallel (max $max)" test "$max" -ge $((CAP / 2))
check "every client was checked ($checked of $N)" test "$checked" -ge "$N"
# Served: from the server accepting the connection to the secret sent, by
# the server's own log. The whole fetch also counts the client's OpenPGP
# work, which on a real network runs on the client's own host, not here.
server_ms=$("$PY" - "$MANDOS_LOG" <<'PY'
import datetime, sys
def when(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
lines = open(sys.argv[1], errors="replace").read().splitlines()
sent = next(i for i, l in enumerate(lines) if "Sending secret to alpha" in l)
conn = max(i for i, l in enumerate(lines[:sent]) if "TCP connection from" in l and "Protocol" not in l)
print(int((when(lines[sent]) - when(lines[conn])).total_seconds() * 1000))
PY
)
limit=$(vg_scale 1000)
check "the server served the real client within $limit ms (${server_ms:-?} ms)" \
	test "${server_ms:-99999}" -lt "$limit"
limit=$(vg_scale 3000)
check "the whole fetch, client work included, took under $limit ms (${served_ms:-?} ms)" \
	test "${served_ms:-99999}" -lt "$limit"
# The last checkers started just now: give their `sleep 1` time to end.
check "checkers succeed" log_has 'Checker for c0000 succeeded' "$(vg_scale 3)"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
check "no checker outlives the server" test "$(ps -o pid= --ppid "$MANDOS_PID" | wc -l)" -eq 0
finish
