#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# The server out of file descriptors (EMFILE on accept). Its listening
# socket stays readable, so a naive server spins at 100% CPU and floods its
# log. Ours drops the oldest unauthenticated connection to make room (a
# real client still gets in), and with nothing to drop it stops accepting
# for 250 ms at a time, then takes the waiting connections once
# descriptors are free again.
#
# The limit is lowered on the running server with prlimit, as the user the
# server runs as (root here lacks CAP_SYS_RESOURCE in some containers).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog prlimit setpriv

config_with alpha
server_starts
expect_secret "alpha gets its secret" alpha "[::1]:$PORT"

uid=$(awk '/^Uid:/ { print $3 }' "/proc/$MANDOS_PID/status")
gid=$(awk '/^Gid:/ { print $3 }' "/proc/$MANDOS_PID/status")
# set_soft_limit N: the server's soft RLIMIT_NOFILE (the hard one stays).
set_soft_limit() {
	setpriv --reuid="$uid" --regid="$gid" --clear-groups prlimit --pid "$MANDOS_PID" --nofile="$1:"
}

# 1. 40 descriptors, 60 silent connections: the oldest are dropped.
check "the server's soft file descriptor limit is set to 40" set_soft_limit 40
out="$SCRATCH/hold.out"
start_peers hold 10 "$PY" "$HOSTILE" hold --address 127.0.0.1 --port "$PORT" --silent 60 --deadline 15 --early 5
sleep 0.5
t0=$(cpu_ticks "$MANDOS_PID")
sleep 3
ticks=$(($(cpu_ticks "$MANDOS_PID") - t0))
check "no busy loop while out of descriptors: $ticks CPU ticks in 3 s (limit 30)" test "$ticks" -le 30
drops=$(log_count 'Out of file descriptors: dropping the oldest unauthenticated connection')
check "the server made room by dropping connections ($drops)" test "$drops" -ge 1
t1=$(date +%s%N)
got=$(fetch alpha "[::1]:$PORT" 10)
ms=$((($(date +%s%N) - t1) / 1000000))
check "alpha gets its secret while descriptors are short" test "$got" = "$(secret_of alpha)"
check "...within $(vg_scale 2000) ms (${ms} ms)" test "$ms" -le "$(vg_scale 2000)"
wait_peers hold
rc=$?
check "every silent connection was closed in time" test "$rc" = 0
early=$(sed -n 's/^closed within 5.0 s: *//p' "$out")
n=$(wc -w <<<"$early")
check "the ones dropped were the oldest ($early)" test "$n" -ge 1 -a "$early" = "$(seq -s ' ' 0 $((n - 1)))"

# 2. No descriptor free and no connection to drop: accepting pauses.
# The limit bounds descriptor numbers: set it to the lowest free number.
wait_fd_count "$MANDOS_PID" 12 >/dev/null
lowest_free=$(find "/proc/$MANDOS_PID/fd" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n |
	awk 'BEGIN { n = 0 } $1 == n { n++ } END { print n }')
check "the server's soft file descriptor limit is set to its lowest free descriptor ($lowest_free)" \
	set_soft_limit "$lowest_free"
pauses0=$(log_count 'not accepting for 250 ms')
peers=()
for i in 1 2 3 4 5; do
	"$PY" "$PEERS" send --address 127.0.0.1 --port "$PORT" --data '2\r\n' --wait 10 --max-received 0 \
		>"$SCRATCH/peer$i.out" 2>&1 &
	peers+=($!)
	remember_pid "$!"
done
sleep 0.5
t0=$(cpu_ticks "$MANDOS_PID")
sleep 2
ticks=$(($(cpu_ticks "$MANDOS_PID") - t0))
pauses=$(($(log_count 'not accepting for 250 ms') - pauses0))
check "no busy loop with nothing to drop: $ticks CPU ticks in 2 s (limit 20)" test "$ticks" -le 20
check "accepting paused, a few times a second ($pauses warnings)" test "$pauses" -ge 2 -a "$pauses" -le 14
check "the server's soft file descriptor limit is raised again" set_soft_limit 1024
for i in "${!peers[@]}"; do
	wait "${peers[$i]}"
	check "waiting peer $((i + 1)) is taken and refused once descriptors are free" test $? = 0
done
check "...with 'Unknown protocol version'" test "$(log_count 'Unknown protocol version')" -ge 5
check "the server accepts again" log_has "Accepting connections again" 1
expect_secret "alpha gets its secret afterwards" alpha "[::1]:$PORT"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
