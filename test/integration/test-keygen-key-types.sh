#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Every TLS key type Debian's mandos-keygen makes (--tls-keytype TYPE, that
# is certtool --generate-privkey --sec-param ultra --key-type=TYPE) is
# served to the real mandos-client: ed25519 (the default), rsa (8192 bits,
# e = 65537, with Debian 12's GnuTLS), ecdsa (P-384) and ed448. The server
# refuses keys too costly to check (test-hostile-costly-keys.sh); none of
# these is one. The keys are made once per build tree (the RSA one takes
# mandos-keygen some 20 s) and kept in the key cache, as lib.sh's.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

TYPES="ed25519 rsa ecdsa ed448"

sections=()
for type in $TYPES; do
	t0=$(date +%s)
	ensure_keys "keytype-$type" "$type"
	diag "$type: $(certtool --pubkey-info --load-pubkey "$(key_dir "keytype-$type")/tls-pubkey.pem" 2>/dev/null |
		sed -n 's/^\t\(Public Key Algorithm\|Algorithm Security Level\): //p' | tr '\n' ' ')($(($(date +%s) - t0)) s)"
	sections+=("$(client_section "keytype-$type")")
done
CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "${sections[@]}"

server_starts
for type in $TYPES; do
	expect_secret "the client whose key mandos-keygen --tls-keytype $type made gets its secret" "keytype-$type" "[::1]:$PORT"
done
check "no key was refused" test "$(log_count 'Refused the key')" = 0

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
