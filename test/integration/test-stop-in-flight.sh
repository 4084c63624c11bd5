#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# SIGTERM lets the connections in flight finish (mandos(8), PROCESS): the
# server stops accepting and leaves once they are done, or after 2 s. A
# restart (systemctl restart: SIGTERM, then a new server on the same socket)
# then drops no host in the middle of its fetch. Here a real mandos-client
# waits for its 1 s approval (approved by default) when the server gets
# SIGTERM: it still gets its secret, and the server exits 0 right after. A
# silent peer keeps the server no longer than the 2 s grace.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'approval_delay = PT1S' 'approved_by_default = True' 'checker = true')"

start_mandos || bail "server does not start"
fetch_bg alpha "$SCRATCH/alpha.out" 10
assert_log "Client alpha needs approval" 5
stop_mandos TERM
check "the server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
wait "$FETCH_PID" 2>/dev/null
check "alpha, in flight at the SIGTERM, still gets its secret" test "$(cat "$SCRATCH/alpha.out")" = "$(secret_of alpha)"
sent=$(grep -n 'Sending secret to alpha' "$MANDOS_LOG" | head -n1 | cut -d: -f1)
left=$(grep -n 'Server exiting' "$MANDOS_LOG" | tail -n1 | cut -d: -f1)
check "the server sent it before it left (log lines ${sent:-none} and ${left:-none})" \
	test -n "$sent" -a -n "$left" -a "${sent:-0}" -lt "${left:-0}"

# A silent peer: the server leaves after the grace, not the peer's 10 s.
PORT=$(free_port)
start_mandos || bail "server does not restart"
"$PY" "$PEERS" silent --address ::1 --port "$PORT" --count 1 --deadline "$(vg_scale 20)" >"$SCRATCH/silent.out" 2>&1 &
silent_pid=$!
remember_pid "$silent_pid"
log_has "TCP connection from" 5 || bail "the silent peer did not connect"
t0=$(date +%s%N)
stop_mandos TERM
ms=$((($(date +%s%N) - t0) / 1000000))
check "with a silent peer connected, the server leaves within the grace ($ms ms, at most $(vg_scale 4000))" \
	test "$ms" -le "$(vg_scale 4000)"
check "...and exits 0 (got $MANDOS_RC)" test "$MANDOS_RC" = 0
assert_log "Stopping with 1 connections still open"
finish
