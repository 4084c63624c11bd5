#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# 800 bad connections at once (mandos(8), CONNECTIONS): 500 that send nothing,
# 200 that send "1\r\n", take the server's ClientHello and stop (half of
# them after half a ServerHello), 100 that send random bytes after
# "1\r\n". Meanwhile a real mandos-client is served within 2 s, three
# times over the ten seconds the bad connections are held (by the server's
# log and by the whole fetch); every bad connection is closed by its step
# deadline (10 s; we allow 15 s from its last byte); afterwards the server
# holds no more file descriptors than before.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

SILENT=500
MID=200
RANDOM_BYTES=100
DEADLINE=15
MAX_MS=$(vg_scale 2000)

raise_fd_limit 4096
config_with alpha

server_starts
expect_secret "alpha gets its secret before the bad peers connect" alpha "[::1]:$PORT"
fds_before=$(fd_count "$MANDOS_PID")

if ! start_peers hostile 30 "$PY" "$HOSTILE" hold --address 127.0.0.1 --port "$PORT" --silent "$SILENT" \
	--midhandshake "$MID" --random "$RANDOM_BYTES" --deadline "$DEADLINE"; then
	not_ok "$((SILENT + MID + RANDOM_BYTES)) bad connections are open"
	finish
fi
ok "$((SILENT + MID + RANDOM_BYTES)) bad connections are open"
diag "the server holds $(fd_count "$MANDOS_PID") file descriptors (before: $fds_before)"

for round in 1 2 3; do
	t0=$(date +%s%N)
	got=$(fetch alpha "[::1]:$PORT" 10)
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "round $round: alpha gets its secret among the bad connections" test "$got" = "$(secret_of alpha)"
	server=$(served_ms alpha)
	check "round $round: the server served it within $MAX_MS ms (${server:-?} ms, by its log)" \
		test "${server:-99999}" -le "$MAX_MS"
	check "round $round: the whole fetch took at most $MAX_MS ms (${ms} ms)" test "$ms" -le "$MAX_MS"
	[ "$round" -lt 3 ] && sleep 3
done

wait_peers hostile
rc=$?
check "the server closed every bad connection within ${DEADLINE} s of its last byte" test "$rc" = 0
check "the silent ones timed out during the protocol line (>= $SILENT)" \
	test "$(log_count 'timed out during the protocol line')" -ge "$SILENT"
check "the stalled handshakes timed out during the handshake (>= $MID)" \
	test "$(log_count 'timed out during the TLS handshake')" -ge "$MID"
check "the server is still running" alive "$MANDOS_PID"
fds_after=$(wait_fd_count "$MANDOS_PID" "$fds_before" 5)
check "no file descriptor leaked ($fds_before before, $fds_after after)" test "$fds_after" -le "$fds_before"
expect_secret "alpha gets its secret after the bad connections" alpha "[::1]:$PORT"
check "no secret went to anyone but alpha" \
	test "$(grep -F 'Sending secret to ' "$MANDOS_LOG" | grep -vc 'Sending secret to alpha$')" = 0

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
