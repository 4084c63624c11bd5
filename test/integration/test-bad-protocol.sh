#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Peers that break the wire protocol are refused (connection closed, nothing
# sent), and after each one the server still serves the real mandos-client:
#   - protocol line "2\r\n"            -> "Unknown protocol version"
#   - an empty protocol line "\r\n"     -> "Unknown protocol version"
#   - "GET / HTTP/1.0\r\n\r\n"         -> refused
#   - a 1 MiB line without a newline   -> closed promptly, without reading
#                                         it all (the peer sees a reset)
#   - "1\r\n", then a TLS handshake in which the peer is the TLS server with
#     an X.509 certificate (not a raw public key) -> "Handshake failed" or
#     "Bad certificate", closed, no data

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

config_with alpha

# A self-signed X.509 certificate for the TLS-server peer.
X509="$SCRATCH/x509"
mkdir -p "$X509"
printf 'cn = "mandos-test-x509-peer"\nexpiration_days = 2\ntls_www_server\nsigning_key\n' \
	>"$X509/template"
if ! certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	--outfile "$X509/key.pem" >/dev/null 2>&1 ||
	! certtool --generate-self-signed --load-privkey "$X509/key.pem" \
		--template "$X509/template" --outfile "$X509/cert.pem" >/dev/null 2>&1; then
	bail "certtool could not make a self-signed certificate"
fi

if ! start_mandos; then
	not_ok "server starts and listens on port $PORT"
	finish
fi
ok "server starts and listens on port $PORT"
expect_secret "alpha gets its secret before the bad peers" alpha "[::1]:$PORT"

# peer DESC ARGS...: run a peers.py command against the server, print its
# report, ok if it exits 0.
peer() {
	local desc=$1 out rc
	shift
	out=$("$PY" "$PEERS" "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | sed 's/^/# peer: /'
	if [ "$rc" = 0 ]; then ok "$desc"; else not_ok "$desc"; fi
}

# after DESC: the server is alive and serves the real client.
after() {
	check "server still running after $1" alive "$MANDOS_PID"
	expect_secret "alpha gets its secret after $1" alpha "[::1]:$PORT"
}

# 1. protocol version 2
n=$(log_count "Unknown protocol version")
peer "protocol line '2' is refused: closed, nothing sent" \
	send --address ::1 --port "$PORT" --data '2\r\n' --wait 8 --max-received 0
check "server logged 'Unknown protocol version' for '2'" \
	log_count_above "Unknown protocol version" "$n"
after "protocol line '2'"

# 2. empty protocol line
n=$(log_count "Unknown protocol version")
peer "empty protocol line is refused: closed, nothing sent" \
	send --address ::1 --port "$PORT" --data '\r\n' --wait 8 --max-received 0
check "server logged 'Unknown protocol version' for an empty line" \
	log_count_above "Unknown protocol version" "$n"
after "an empty protocol line"

# 3. an HTTP request
peer "HTTP request is refused: closed, nothing sent" \
	send --address ::1 --port "$PORT" --data 'GET / HTTP/1.0\r\n\r\n' --wait 8 \
	--max-received 0
after "an HTTP request"

# 4. a 1 MiB line with no newline: the server must give up on the line early
# (well before its 10 s step deadline) and close without draining it, which
# the peer sees as a reset (unread data at close, or data sent after close).
peer "1 MiB line without newline: closed within 8 s, not read to the end" \
	send --address ::1 --port "$PORT" --size 1048576 --wait 8 --expect-reset \
	--max-received 0
after "a 1 MiB line"

# 5. the peer is a TLS server with an X.509 certificate
h=$(log_count "Handshake failed")
b=$(log_count "Bad certificate")
peer "X.509 TLS-server peer is refused: closed, no application data" \
	x509-tls --address ::1 --port "$PORT" --cert "$X509/cert.pem" \
	--key "$X509/key.pem" --wait 8
wait_until 3 eval '[ "$(log_count "Handshake failed")" -gt "$h" ] || [ "$(log_count "Bad certificate")" -gt "$b" ]'
check "server logged 'Handshake failed' or 'Bad certificate' for the X.509 peer" \
	test "$(log_count "Handshake failed")" -gt "$h" -o \
	"$(log_count "Bad certificate")" -gt "$b"
after "an X.509 TLS-server peer"

check "server never sent a secret to anyone but alpha" \
	test "$(grep -E ': Sending secret to ' "$MANDOS_LOG" | grep -vcE ': Sending secret to alpha$')" = 0

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

finish
