#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Bad secfiles (mandos-clients.conf(5), secfile and ERRORS): missing, a
# directory, 100 MB, a FIFO (must not block start-up), a device, and (with the
# server started as an ordinary user, since root reads anything) one it may not
# read. Each is one clear error naming the file, line, section and key, only
# that client is skipped, and a good client is served.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog setpriv truncate mkfifo

SEC="$SCRATCH/secfiles"
mkdir -p "$SEC/a-directory"
truncate -s 100M "$SEC/huge"
mkfifo "$SEC/fifo"
secret_of alpha >"$SEC/unreadable"
chmod 000 "$SEC/unreadable"

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha)" \
	"[missing]
secfile = $SEC/no-such-file" \
	"[directory]
secfile = $SEC/a-directory" \
	"[huge]
secfile = $SEC/huge" \
	"[fifo]
secfile = $SEC/fifo" \
	"[device]
secfile = /dev/zero"
CONF="$CONFDIR/clients.conf"

# expect_problem SECTION PATH REASON: the log names the file, the line of
# the secfile key, the section, the key, the path and the reason.
expect_problem() {
	local line
	line=$(grep -n "^\[$1\]\$" "$CONF" | cut -d: -f1)
	line=$((line + 1))
	if log_has "$CONF:$line: [$1] secfile: cannot read '$2': $3 (client skipped)" 1; then
		ok "[$1]: '$3', with file, line, section and key"
	else
		not_ok "[$1]: '$3', with file, line, section and key"
		grep -F "[$1]" "$MANDOS_LOG" | sed 's/^/#   /'
	fi
}

# A writer on the FIFO blocks until someone opens it for reading: the
# server must look at what a secfile is before it opens it.
# shellcheck disable=SC2016 # $1 is for the inner shell
setsid timeout 30 sh -c 'printf x >"$1"' sh "$SEC/fifo" &
writer_pid=$!
remember_pid "$writer_pid"

t0=$(date +%s%N)
if ! start_mandos; then
	not_ok "server starts"
	finish
fi
ms=$((($(date +%s%N) - t0) / 1000000))
ok "server starts"
check "...promptly, the FIFO did not block it (${ms} ms)" test "$ms" -le "$(vg_scale 5000)"
check "the server never opened the FIFO (its writer still waits)" alive "$writer_pid"
kill_pid "$writer_pid"
expect_problem missing "$SEC/no-such-file" "No such file or directory"
expect_problem directory "$SEC/a-directory" "Is a directory"
expect_problem huge "$SEC/huge" "larger than 1048576 bytes"
expect_problem fifo "$SEC/fifo" "not a regular file"
expect_problem device /dev/zero "not a regular file"
check "exactly those five clients are skipped" test "$(log_count '(client skipped)')" = 5
check "the good client is created" log_has "Creating client 'alpha'" 1
check "no skipped client is created" \
	test "$(grep -cE "Creating client '(missing|directory|huge|fifo|device)'" "$MANDOS_LOG")" = 0
expect_secret "alpha gets its secret" alpha "[::1]:$PORT"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

# The server as an ordinary user: a secfile it may not read.
user=$(server_user)
write_config "$CONFDIR" "$(client_section alpha)" \
	"[unreadable]
secfile = $SEC/unreadable"
PORT=$(free_port)
STATEDIR=$(new_statedir)
start_mandos_cmd setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
if ! wait_listening "$PORT" 10; then
	not_ok "server starts as $user"
	finish
fi
ok "server starts as $user"
expect_problem unreadable "$SEC/unreadable" "Permission denied"
expect_secret "alpha gets its secret" alpha "[::1]:$PORT"
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
