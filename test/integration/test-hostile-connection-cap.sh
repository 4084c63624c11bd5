#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# The connection cap (mandos.conf max_connections, default 1024): when it is
# reached, a new connection makes the server drop the oldest connection
# that is not about to get a secret: first a refused one (a peer with an
# unknown key, in the TLS bye), then one that has not proved its key yet
# (protocol line or TLS handshake); never one waiting for approval, being
# sent its secret, or in the bye after it. If none can be dropped, the new
# one is refused. A real client still gets in while the cap is full, even
# when refused peers that never answer the close fill it.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
[ -x "${TLS_PEER:-}" ] || bail "TLS_PEER is not set to the built test/peers/tls-peer"

raise_fd_limit 4096
ensure_keys alpha
ensure_keys bravo
DROP='Too many connections: dropping the oldest unauthenticated connection'

# hold NAME ARGS...: start hostile_peers.py hold in the background (output
# in $SCRATCH/NAME.out) and wait until its connections are open.
hold() {
	local name=$1
	shift
	start_peers "$name" 30 "$PY" "$HOSTILE" hold --address 127.0.0.1 --port "$PORT" "$@"
}

# early NAME: the indexes of NAME's connections closed within 5 s.
early() {
	sed -n 's/^closed within 5.0 s: *//p' "$SCRATCH/$1.out"
}

# 1. The documented default: 1024.
CONFDIR="$SCRATCH/conf-default"
write_config "$CONFDIR" "$(client_section alpha)"
if ! start_mandos; then
	not_ok "server starts with the default cap"
	finish
fi
check "1030 silent connections are opened" hold def --silent 1030 --deadline 15 --early 5
wait_peers def
check "...all closed by the server" test $? = 0
check "the default cap is 1024: the 6 oldest were dropped at once ($(early def))" \
	test "$(early def)" = "0 1 2 3 4 5"
check "...each with a log line" test "$(log_count "$DROP")" = 6
stop_mandos TERM
PORT=

# 2. max_connections = 50: the oldest unauthenticated go first; a waiting
# (authenticated) client stays; a real client gets in while it is full.
CONFDIR="$SCRATCH/conf-50"
MANDOS_CONF_EXTRA="max_connections = 50" write_config "$CONFDIR" "$(client_section alpha)" \
	"$(client_section bravo 'approval_delay = PT6S' 'approved_by_default = True' 'checker = true')"
if ! start_mandos; then
	not_ok "server starts with max_connections = 50"
	finish
fi
ok "server starts with max_connections = 50"

fetch_bg bravo "$SCRATCH/bravo.out" 20
bravo_pid=$FETCH_PID
check "bravo waits for approval" log_has "Client bravo needs approval" 5

check "first 49 silent connections are opened (the cap is now full)" \
	hold first --silent 49 --deadline 15 --early 5
check "no connection dropped yet" test "$(log_count "$DROP")" = 0
check "10 more silent connections are opened" hold more --silent 10 --deadline 15 --early 5
sleep 1
check "the 10 oldest were dropped, one each ($(log_count "$DROP") drops)" test "$(log_count "$DROP")" = 10

t0=$(date +%s%N)
got=$(fetch alpha "[::1]:$PORT" 10)
ms=$((($(date +%s%N) - t0) / 1000000))
check "alpha gets its secret while the cap is full" test "$got" = "$(secret_of alpha)"
server=$(served_ms alpha)
limit=$(vg_scale 2000)
check "...served within $limit ms by the server's log (${server:-?} ms)" test "${server:-99999}" -le "$limit"
check "...the whole fetch within $limit ms (${ms} ms)" test "$ms" -le "$limit"

wait_peers first
check "the first connections were all closed in time" test $? = 0
check "the 11 oldest were the ones dropped early ($(early first))" \
	test "$(early first)" = "0 1 2 3 4 5 6 7 8 9 10"
wait_peers more
check "the later connections were all closed in time" test $? = 0
check "none of the later ones was dropped early ($(early more))" test -z "$(early more)"

wait "$bravo_pid"
check "bravo, waiting for approval all along, was never dropped and got its secret" \
	test "$(cat "$SCRATCH/bravo.out")" = "$(secret_of bravo)"
check "the server never dropped bravo's connection" test "$(log_count 'Client bravo went away')" = 0
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
PORT=

# 3. max_connections = 1, held by a client waiting for approval: a new
# connection is refused at once (nothing to drop).
CONFDIR="$SCRATCH/conf-1"
MANDOS_CONF_EXTRA="max_connections = 1" write_config "$CONFDIR" \
	"$(client_section bravo 'approval_delay = PT4S' 'approved_by_default = True' 'checker = true')"
if ! start_mandos; then
	not_ok "server starts with max_connections = 1"
	finish
fi
fetch_bg bravo "$SCRATCH/bravo2.out" 20
bravo_pid=$FETCH_PID
check "bravo waits for approval" log_has "Client bravo needs approval" 5
out=$("$PY" "$PEERS" send --address 127.0.0.1 --port "$PORT" --data '1\r\n' --wait 2 --max-received 0)
rc=$?
diag "peer: $out"
check "a new connection is closed at once" test "$rc" = 0
check "...refused, as nothing could be dropped" \
	log_has "Too many connections (1), none of them to drop: refusing one" 2
wait "$bravo_pid"
check "bravo still gets its secret" test "$(cat "$SCRATCH/bravo2.out")" = "$(secret_of bravo)"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
PORT=

# 4. max_connections = 20, full of refused peers: 30 peers with unknown keys
# (test/peers/tls-peer.c) complete the handshake, are refused, and hold
# their connection in the bye without ever answering the close; each one
# the server closes connects again 200 ms later. The real client is served
# at once, as a refused peer is dropped for it (before, refused peers could
# not be dropped: the real client waited for their 10 s bye to end).
CONFDIR="$SCRATCH/conf-20"
MANDOS_CONF_EXTRA="max_connections = 20" write_config "$CONFDIR" "$(client_section alpha)"
if ! start_mandos; then
	not_ok "server starts with max_connections = 20"
	finish
fi
ok "server starts with max_connections = 20"
check "30 refused peers have connected" start_peers refused 10 "$TLS_PEER" --address 127.0.0.1 --port "$PORT" \
	--connections 30 --after hold --hold 15 --reconnect --duration 20 --pause 200
refused_pid=$PEER_PID
check "...the cap is full of them" log_has "Too many connections" 5
check "...refused ones are dropped for new ones" log_has "Too many connections: dropping the oldest refused connection" 5
sleep 1
t0=$(date +%s%N)
got=$(fetch alpha "[::1]:$PORT" 15)
ms=$((($(date +%s%N) - t0) / 1000000))
check "alpha gets its secret while refused peers fill the cap" test "$got" = "$(secret_of alpha)"
limit=$(vg_scale 5000)
check "...the whole fetch within $limit ms (${ms} ms)" test "$ms" -le "$limit"
kill_pid "$refused_pid"
check "server still runs" alive "$MANDOS_PID"
check "no connection was refused for want of one to drop ($(log_count 'refusing one') refused)" \
	test "$(log_count 'refusing one')" = 0
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
