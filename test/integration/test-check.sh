#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# "mandos --check --configdir DIR" validates a configuration directory:
#   - exit 0 on a good one (mandos.conf + clients.conf from mandos-keygen);
#   - exit 1 on a broken clients.conf, with one line per problem naming the
#     file, the section and the key.
# And a broken client entry does not stop the server: it starts, logs an
# error naming each bad section, and serves the good client.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

# ------------------------------------------------------------ good config
GOOD="$SCRATCH/check-good"
write_config "$GOOD" "$(client_section alpha)" "$(client_section bravo 'enabled = false')"
out=$(timeout 30 "${CLEAN_ENV[@]}" "$MANDOS" --check --configdir "$GOOD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# check(good): /'
check "--check exits 0 on a good configdir (got $rc)" test "$rc" = 0

# ---------------------------------------------------------- broken config
# Each broken section has exactly one problem; everything else is valid.
dummy_id() { printf '%s' "$1" | sha256sum | cut -c1-64 | tr 'a-f' 'A-F'; }
dummy_fpr() { printf '%s' "$1" | sha1sum | cut -c1-40 | tr 'a-f' 'A-F'; }
broken() { # broken NAME [LINE...]: a section with a valid key_id and secret
	local name=$1
	shift
	printf '[%s]\nkey_id = %s\nfingerprint = %s\n' \
		"$name" "$(dummy_id "$name")" "$(dummy_fpr "$name")"
	printf '%s\n' "$@"
}
# section -> the key that is wrong in it (for oscar, the missing secret:
# secret or secfile may be named)
declare -A BAD_KEY=(
	[kilo]='timeout'
	[lima]='secret'
	[mike]='approved_by_default'
	[november]='checker'
	[oscar]='secret|secfile'
)
BAD="$SCRATCH/check-bad"
write_config "$BAD" \
	"$(broken kilo 'secret = dGVzdA==' 'timeout = forever')" \
	"$(broken lima 'secret = abc')" \
	"$(client_section alpha)" \
	"$(broken mike 'secret = dGVzdA==' 'approved_by_default = maybe')" \
	"$(broken november 'secret = dGVzdA==' 'checker = fping %(nosuch)s')" \
	"$(broken oscar 'host = oscar')"
BADFILE="$BAD/clients.conf"

out=$(timeout 30 "${CLEAN_ENV[@]}" "$MANDOS" --check --configdir "$BAD" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# check(bad): /'
check "--check exits 1 on a broken clients.conf (got $rc)" test "$rc" = 1
for sec in kilo lima mike november oscar; do
	key=${BAD_KEY[$sec]}
	if printf '%s\n' "$out" | grep -F -- "$BADFILE" | grep -w -- "$sec" |
		grep -qE -- "$key"; then
		ok "--check reports $BADFILE, section $sec, key $key"
	else
		not_ok "--check reports $BADFILE, section $sec, key $key"
	fi
done
check "--check does not report the good section alpha" \
	test "$(printf '%s\n' "$out" | grep -w -c -- alpha)" = 0

# ------------------------------------- the server starts with a broken file
CONFDIR=$BAD
if start_mandos; then
	ok "server starts with a broken clients.conf"
	expect_secret "good client alpha gets its secret" alpha "[::1]:$PORT"
	for sec in kilo lima mike november oscar; do
		if grep -E 'ERROR' "$MANDOS_LOG" | grep -qw -- "$sec"; then
			ok "server logged an error naming section $sec"
		else
			not_ok "server logged an error naming section $sec"
		fi
	done
	stop_mandos TERM
	check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
else
	not_ok "server starts with a broken clients.conf"
fi

finish
