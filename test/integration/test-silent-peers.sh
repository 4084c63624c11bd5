#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# 50 TCP connections that never send a byte must not delay a real client
# (served within 2 s while they are open; 8 s under valgrind, see lib.sh's
# vg_scale), and the server must close each of them by its per-step
# deadline (10 s; we allow 15 s from each connect).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

SILENT=50
DEADLINE=15   # seconds each silent connection may stay open
MAX_FETCH=$(vg_scale 2)   # seconds a real fetch may take while they are open

config_with alpha

if ! start_mandos; then
	not_ok "server starts and listens on port $PORT"
	finish
fi
ok "server starts and listens on port $PORT"

# Warm-up: the first fetch of a run may pay one-time costs on both sides.
expect_secret "alpha gets its secret before the silent peers connect" alpha "[::1]:$PORT"

if start_peers silent 10 "$PY" "$PEERS" silent --address ::1 --port "$PORT" --count "$SILENT" --deadline "$DEADLINE"
then
	ok "$SILENT silent connections are open"
else
	not_ok "$SILENT silent connections are open"
	finish
fi

# A real client, timed while the silent connections are held open.
t0=$(date +%s%N)
got=$(fetch alpha "[::1]:$PORT" 10)
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
if [ "$got" = "$(secret_of alpha)" ]; then
	ok "alpha gets its secret while $SILENT silent peers are connected"
else
	not_ok "alpha gets its secret while $SILENT silent peers are connected (got ${#got} bytes)"
fi
check "that fetch took ${ms} ms (limit $((MAX_FETCH * 1000)) ms)" \
	test "$ms" -le $((MAX_FETCH * 1000))

# Every silent connection must be closed by the server within the deadline.
wait_peers silent
rc=$?
check "server closed all $SILENT silent connections within ${DEADLINE}s of connect" \
	test "$rc" = 0
check "server still running" alive "$MANDOS_PID"
expect_secret "alpha gets its secret after the silent peers are gone" alpha "[::1]:$PORT"

finish
