#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# 10,000 connections that end every way a connection can end leak no file
# descriptor: closed at once, closed after the protocol line, closed in the
# middle of the TLS handshake, a bad protocol version, an X.509 TLS peer
# (handshake refused), a real client with an unknown key (TLS bye after
# "Client not found"), and real clients that get their secret. The server's
# /proc/PID/fd count is the same before and after.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

config_with alpha
ensure_keys stranger

X509="$SCRATCH/x509"
mkdir -p "$X509"
printf 'cn = "mandos-test-x509-peer"\nexpiration_days = 2\ntls_www_server\nsigning_key\n' >"$X509/template"
if ! certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 --outfile "$X509/key.pem" >/dev/null 2>&1 ||
	! certtool --generate-self-signed --load-privkey "$X509/key.pem" --template "$X509/template" \
		--outfile "$X509/cert.pem" >/dev/null 2>&1; then
	bail "certtool could not make a self-signed certificate"
fi

server_starts
expect_secret "alpha gets its secret" alpha "[::1]:$PORT"
fds_before=$(fd_count "$MANDOS_PID")
rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$MANDOS_PID/status")
diag "before: $fds_before file descriptors, VmRSS $rss_before kB"

out=$("$PY" "$HOSTILE" churn --address 127.0.0.1 --port "$PORT" \
	--kinds close=3000,line=3000,hello=2000,badversion=1500,x509=490 \
	--cert "$X509/cert.pem" --key "$X509/key.pem" 2>&1)
rc=$?
diag "churn: $out"
check "9,990 short bad connections made, each refused or closed as expected" test "$rc" = 0

for i in 1 2 3 4 5; do
	expect_secret "alpha gets its secret ($i)" alpha "[::1]:$PORT"
	expect_nothing "a client with an unknown key gets nothing ($i)" stranger "[::1]:$PORT" 2
done
check "the unknown key was looked up and refused" \
	test "$(log_count 'Client not found for key ID')" -ge 5

fds_after=$(wait_fd_count "$MANDOS_PID" "$fds_before" 15)
rss_after=$(awk '/^VmRSS:/ { print $2 }' "/proc/$MANDOS_PID/status")
diag "after: $fds_after file descriptors, VmRSS $rss_after kB"
check "no file descriptor leaked after 10,000 connections ($fds_before before, $fds_after after)" \
	test "$fds_after" -le "$fds_before"
check "every connection was accepted (10,000 or more)" test "$(log_count 'TCP connection from')" -ge 10000
check "the server is still running" alive "$MANDOS_PID"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
