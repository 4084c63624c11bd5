#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A reload through the root launcher (src/launcher.h) takes as much
# configuration as a start does: the launcher hands the files' bytes over in
# a sealed memfd, not in a D-Bus array, which holds at most 64 MiB. Started
# as root with a small clients.conf, the server reloads after a drop-in has
# grown past 64 MiB (a long comment block, then a new client): the reload
# succeeds, the new client is served to the real mandos-client, and the
# client already there still is.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha 'checker = true')"
ensure_keys bravo

start_mandos || bail "server does not start"
expect_secret "alpha is served" alpha "[::1]:$PORT"
expect_nothing "bravo is not configured yet" bravo "[::1]:$PORT" 2

# 72 MiB of comment lines (whole ones), then bravo: past the 64 MiB a D-Bus
# array holds, far below the 1 GiB a file may have.
mkdir -p "$CONFDIR/clients.d"
big="$CONFDIR/clients.d/50-bravo.conf"
yes '# A long comment block, such as a fleet inventory kept beside its clients.' |
	head -n 1000000 >"$big"
client_section bravo 'checker = true' >>"$big"
size=$(stat -c %s "$big")
check "the drop-in is over 64 MiB ($size bytes)" test "$size" -gt $((64 * 1024 * 1024))

kill -HUP "$MANDOS_PID"
assert_log "Reloaded the configuration: 2 clients, 1 added, 0 removed" 20
assert_log "Client bravo added" 1
check "the log has no refused reload" test "$(log_count 'Reload refused')" -eq 0
check "the server is still running" alive "$MANDOS_PID"
expect_secret "bravo, added from the 72 MiB drop-in, is served" bravo "[::1]:$PORT"
expect_secret "alpha is still served" alpha "[::1]:$PORT"

# The memfd lives no longer than the reload: neither the server nor the
# launcher (its child) holds or maps it afterwards.
memfd_holders() {
	local pid
	for pid in "$MANDOS_PID" $(ps -o pid= --ppid "$MANDOS_PID"); do
		if find "/proc/$pid/fd" -lname '/memfd:mandos-configuration*' 2>/dev/null | grep -q . ||
			grep -q 'memfd:mandos-configuration' "/proc/$pid/maps" 2>/dev/null; then
			echo "$pid"
		fi
	done
}
check "no process holds the configuration's memfd after the reload ($(memfd_holders | tr '\n' ' '))" \
	test -z "$(memfd_holders)"
# What the server read of it is wiped after use: no line of bravo's
# base64 secret is left in its memory (read as root through /proc/PID/mem).
hits=$(secret_text_in_memory "$MANDOS_PID" "$(key_dir bravo)/section.conf")
check "no line of bravo's base64 secret is left in the server's memory ($hits copies)" test "$hits" = 0
rm -f "$big"

stop_mandos TERM
check "server exits 0 on SIGTERM after the reload (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
