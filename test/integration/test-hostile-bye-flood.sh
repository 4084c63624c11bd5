#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Peers flood the TLS bye. A peer that completes the TLS handshake with a key
# of its own that we do not know is refused (client not found); instead of
# answering our close, it sends application data without end. The server
# must not keep it: it reads and throws away a few KiB at most and gives a
# refused peer about 1 s (src/session.h). A peer with a configured key that
# floods after its secret is cut off after a small bound too. Meanwhile the
# server's memory (VmHWM, the peak RSS) stays small and the real
# mandos-client is still served.
#
# The peers are test/peers/tls-peer.c ($TLS_PEER).

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
[ -x "${TLS_PEER:-}" ] || bail "TLS_PEER is not set to the built test/peers/tls-peer"

ensure_keys alpha

# The server's peak RSS must stay below this, and grow by less than
# GROWTH_MAX_KB during the test (a server that keeps what the peers send
# grows by about as much as they send: 80 MiB and more here).
RSS_MAX_KB=$((64 * 1024))
GROWTH_MAX_KB=$((24 * 1024))

# Under valgrind the process is valgrind's, and under ASan the shadow memory
# counts: there only the growth is checked (and under valgrind, nothing).
absolute=1
if [ -n "${MANDOS_VALGRIND:-}" ] || ldd "${MANDOS_REAL:-$MANDOS}" 2>/dev/null | grep -q libasan; then
	absolute=
fi

# status_kb PID FIELD: a field of /proc/PID/status (VmRSS, VmHWM) in kB.
status_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

# flood DESC ARGS...: run tls-peer with ARGS against the server (bounded in
# time), keep its report in $SCRATCH/peer.$n.out, and set PEER_SUMMARY.
_flood_n=0
flood() {
	local desc=$1 out rc
	shift
	_flood_n=$((_flood_n + 1))
	out="$SCRATCH/peer.$_flood_n.out"
	setsid timeout -k 2 60 "$TLS_PEER" --address 127.0.0.1 --port "$PORT" "$@" >"$out" 2>&1 &
	local pid=$!
	remember_pid "$pid"
	wait "$pid"
	rc=$?
	PEER_SUMMARY=$(grep '^summary:' "$out")
	diag "$desc: ${PEER_SUMMARY:-no summary (exit $rc)}"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$out" | head -n 20
	return "$rc"
}

# summary_field NAME: a field of the last peer summary.
summary_field() {
	printf '%s\n' "$PEER_SUMMARY" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# memory_base: start a phase: reset the server's VmHWM to its current RSS
# (clear_refs, see proc(5)) and remember that RSS in RSS0.
memory_base() {
	echo 5 >"/proc/$MANDOS_PID/clear_refs" 2>/dev/null ||
		diag "cannot reset VmHWM of $MANDOS_PID: the peak covers the earlier phases too"
	RSS0=$(status_kb "$MANDOS_PID" VmRSS)
}

# memory_ok DESC: the server's peak and growth since memory_base are within
# the bounds.
memory_ok() {
	local hwm
	hwm=$(status_kb "$MANDOS_PID" VmHWM)
	if [ -n "$absolute" ]; then
		check "$1: the server's peak RSS stays under $((RSS_MAX_KB / 1024)) MB (VmHWM ${hwm:-?} kB)" \
			test "${hwm:-999999999}" -lt "$RSS_MAX_KB"
	fi
	if [ -z "${MANDOS_VALGRIND:-}" ]; then
		check "$1: ...and grew by less than $((GROWTH_MAX_KB / 1024)) MB (from $RSS0 kB to ${hwm:-?} kB)" \
			test $((${hwm:-999999999} - RSS0)) -lt "$GROWTH_MAX_KB"
	fi
}

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha)"
server_starts
expect_secret "alpha gets its secret before the floods" alpha "[::1]:$PORT"
diag "server RSS before the floods: $(status_kb "$MANDOS_PID" VmRSS) kB"

# How long a refused peer may stay after its junk: about 1 s by design;
# the old server gave it 10 s.
close_max=$(vg_scale 3)

# 0. Ten peers with unknown keys that send nothing more and never answer
# the close: each gets our close alert and FIN at once, and is closed
# after about 1 s.
flood "10 refused, holding" --connections 10 --after hold --hold 15
check "ten refused peers that hold complete their handshakes" test "$?" = 0
check "...get the server's FIN at once (fins=$(summary_field fins), max_fin_s=$(summary_field max_fin_s))" \
	awk -v n="$(summary_field fins)" -v t="$(summary_field max_fin_s)" -v m="$(vg_scale 1)" \
	'BEGIN { exit !(n == 10 && t <= m) }'
check "...and are closed within $close_max s (closed_by_server=$(summary_field closed_by_server), max_close_s=$(summary_field max_close_s))" \
	awk -v n="$(summary_field closed_by_server)" -v t="$(summary_field max_close_s)" -v m="$close_max" \
	'BEGIN { exit !(n == 10 && t <= m) }'

# 1. Ten peers with unknown keys, 8 MiB of junk each, then they hold.
memory_base
flood "10 x 8 MiB after refusal" --connections 10 --junk 8M --after hold --hold 15
check "ten refused peers complete their handshakes" test "$?" = 0
check "...and are refused (client not found)" test "$(log_count 'Client not found for key ID')" -ge 10
check "...and the server closed all ten (closed_by_server=$(summary_field closed_by_server))" \
	test "$(summary_field closed_by_server)" = 10
check "...within $close_max s (max_close_s=$(summary_field max_close_s))" \
	awk -v t="$(summary_field max_close_s)" -v m="$close_max" 'BEGIN { exit !(t != "" && t <= m) }'
memory_ok "10 x 8 MiB"
expect_secret "alpha still gets its secret" alpha "[::1]:$PORT"

# 2. Four peers, 64 MiB each.
memory_base
flood "4 x 64 MiB after refusal" --connections 4 --junk 64M --after hold --hold 15
check "four refused peers complete their handshakes" test "$?" = 0
check "...and the server closed all four within $close_max s (max_close_s=$(summary_field max_close_s))" \
	awk -v n="$(summary_field closed_by_server)" -v t="$(summary_field max_close_s)" -v m="$close_max" \
	'BEGIN { exit !(n == 4 && t <= m) }'
memory_ok "4 x 64 MiB"

# 3. Four peers with alpha's own key, served, then 16 MiB of junk instead
# of the close: the server drains a little, then cuts them off.
memory_base
sent0=$(log_count 'Sending secret to alpha')
flood "4 x 16 MiB after the secret" --connections 4 --key "$(key_dir alpha)/tls-privkey.pem" \
	--junk 16M --after hold --hold 15
check "four peers with alpha's key complete their handshakes" test "$?" = 0
check "...are sent the secret" test "$(($(log_count 'Sending secret to alpha') - sent0))" = 4
check "...and the server closed all four within $(vg_scale 12) s (closed_by_server=$(summary_field closed_by_server), max_close_s=$(summary_field max_close_s))" \
	awk -v n="$(summary_field closed_by_server)" -v t="$(summary_field max_close_s)" -v m="$(vg_scale 12)" \
	'BEGIN { exit !(n == 4 && t <= m) }'
memory_ok "4 x 16 MiB after the secret"

expect_secret "alpha still gets its secret after all floods" alpha "[::1]:$PORT"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
