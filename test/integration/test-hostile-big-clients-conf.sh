#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# A clients.conf with 10,000 sections, one of them broken: the other
# 9,999 load (one "Creating client" line each), the broken one is named
# with the file, its line, the section and (for a bad value) the key, the
# server starts quickly and serves a real client. Twice: once with a bad
# value, once with a line that is not "key = value".

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

N=10000
BROKEN=c05000

# run_case DESC BROKEN_LINE EXPECTED: clients.conf with alpha, then N-1
# generated sections; BROKEN_LINE is added to section $BROKEN; the log
# must have EXPECTED (with @LINE@ replaced by BROKEN_LINE's line number).
run_case() {
	local desc=$1 broken=$2 expected=$3 conf line t0 ms created
	CONFDIR="$SCRATCH/conf-$desc"
	write_config "$CONFDIR" "[DEFAULT]
interval = PT1H
checker = true" "$(client_section alpha)"
	conf="$CONFDIR/clients.conf"
	"$PY" - "$N" "$BROKEN" "$broken" >>"$conf" <<'PY'
import os, sys
n, broken, line = int(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(1, n):
    name = "c%05d" % i
    print("[%s]\nkey_id = %s\nsecret = aGk=" % (name, os.urandom(32).hex()))
    if name == broken:
        print(line)
    print()
PY
	line=$(grep -nxF -- "$broken" "$conf" | cut -d: -f1)
	expected=${expected//@LINE@/$line}

	PORT=
	STATEDIR=
	t0=$(date +%s%N)
	if ! start_mandos; then
		not_ok "$desc: server starts with $N sections"
		return
	fi
	ok "$desc: server starts with $N sections"
	# The socket is opened first; the clients are created after.
	log_has "Creating client 'c$(printf %05d $((N - 1)))'" "$(vg_scale 20)"
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "$desc: ...and has created its clients within $(vg_scale 20) s (${ms} ms)" \
		test "$ms" -le "$(vg_scale 20000)"
	check "$desc: the broken section is named: '$expected'" log_has "$expected" 1
	check "$desc: exactly one client is skipped" test "$(log_count '(client skipped)')" = 1
	created=$(log_count "Creating client '")
	check "$desc: the other $((N - 1)) clients are created ($created)" test "$created" = $((N - 1))
	check "$desc: the broken one is not" test "$(log_count "Creating client '$BROKEN'")" = 0
	expect_secret "$desc: alpha gets its secret" alpha "[::1]:$PORT"
	stop_mandos TERM
	check "$desc: server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
}

ensure_keys alpha
run_case bad-value "timeout = 5 minutes" \
	"clients.conf:@LINE@: [$BROKEN] timeout: not a duration: '5 minutes' (client skipped)"
run_case bad-line "this line has no separator" \
	"clients.conf:@LINE@: [$BROKEN] neither a [section] header nor a key = value line (client skipped)"
finish
