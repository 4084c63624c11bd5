#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Approval with the real mandos-client (mandos(8), APPROVAL): with a delay, a
# deny-by-default client gets nothing and an approve-by-default one gets its
# secret after the delay; a client that goes away ends its wait at once; a
# client disabled during the wait gets nothing, even approved by default.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'approval_delay = PT2S' 'approved_by_default = False' 'checker = true')" \
	"$(client_section bravo 'approval_delay = PT2S' 'approved_by_default = True' 'checker = true')" \
	"$(client_section charlie 'approval_delay = PT20S' 'approved_by_default = True' 'checker = true')" \
	"$(client_section delta 'approval_delay = PT6S' 'approved_by_default = True' \
		'interval = PT1S' 'timeout = PT1S' 'checker = false')"

server_starts

# delta first: it expires within two seconds, while it waits for approval.
fetch_bg delta "$SCRATCH/delta.out" 15
delta_pid=$FETCH_PID
assert_log "Client delta needs approval" 3
assert_log "Client delta has expired and is disabled" 4
assert_log "Client delta is disabled" 2
before_expiry=$(grep -nF 'Client delta needs approval' "$MANDOS_LOG" | head -n1 | cut -d: -f1)
expiry=$(grep -nF 'Client delta has expired' "$MANDOS_LOG" | head -n1 | cut -d: -f1)
check "delta was waiting when it expired" test "${before_expiry:-0}" -gt 0 -a "${before_expiry:-0}" -lt "${expiry:-0}"
kill_pid "$delta_pid"
check "delta got nothing" test ! -s "$SCRATCH/delta.out"
check "the server never sent delta its secret" test "$(log_count 'Sending secret to delta')" -eq 0

# alpha: deny by default, nobody approves.
expect_nothing "deny-by-default client gets nothing within 4 s" alpha "[::1]:$PORT" 4
assert_log "Client alpha needs approval"
assert_log "Client alpha timed out while waiting for approval"

# bravo: approve by default, after the delay.
start=$(date +%s%N)
expect_secret "approve-by-default client gets its secret" bravo "[::1]:$PORT" 10
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check "...but only after the 2 s delay (${elapsed_ms} ms)" test "$elapsed_ms" -ge 2000
assert_log "Client bravo needs approval"

# charlie: the client dies during a 20 s wait; the wait ends at once.
fetch_bg charlie /dev/null 30
charlie_pid=$FETCH_PID
assert_log "Client charlie needs approval" 3
kill -KILL -- "-$charlie_pid" 2>/dev/null
killed=$(date +%s%N)
if log_has "Client charlie went away while waiting for approval" 2; then
	ms=$((($(date +%s%N) - killed) / 1000000))
	ok "charlie's wait ended when it went away (${ms} ms)"
	check "...at once (under 1 s)" test "$ms" -lt 1000
else
	not_ok "charlie's wait ended when it went away"
fi
check "the server never sent charlie its secret" test "$(log_count 'Sending secret to charlie')" -eq 0
check "the server is still serving" test "$(fetch bravo "[::1]:$PORT" 10)" = "$(secret_of bravo)"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
