#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A client configuration the server cannot read is a failed start, never a
# server with fewer clients: the server runs as _mandos here (as the shipped
# unit's User= does), a host was disabled by expiry, and clients.conf goes
# back to 0600 root:root (as Debian's mandos package ships it). The server
# must refuse to start, say which file and why, and leave the saved state
# alone; once the file is readable again, the host is still disabled. The
# same for a clients.d/ it cannot list and a file over the size limit (a
# file of 17 MiB is not over it). No
# clients at all, because none are configured, still starts.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog setpriv

user=$(server_user)
group=$(id -gn "$user")

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section bravo 'timeout = PT1S' 'interval = PT1S' 'checker = false')"
chmod 0755 "$SCRATCH"
chgrp "$group" "$CONFDIR/clients.conf" "$CONFDIR/mandos.conf"
chmod 0640 "$CONFDIR/clients.conf" "$CONFDIR/mandos.conf"
STATEDIR=$(new_statedir)
STATE="$STATEDIR/clients.json"

start_as_user() {
	[ -n "${PORT:-}" ] || PORT=$(free_port)
	start_mandos_cmd setpriv --reuid="$user" --regid="$group" --clear-groups \
		"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
		--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
}

# refused DESC PROBLEM: the server started as $user exits non-zero within
# 10 s without listening, logging PROBLEM ("FILE: cannot read: why"), and
# the state file is byte for byte what it was.
refused() {
	local desc=$1 problem=$2 before after _
	before=$(sha256sum "$STATE" 2>/dev/null)
	start_as_user
	wait_until 10 exited "$MANDOS_PID"
	if alive "$MANDOS_PID"; then
		not_ok "$desc: the server is still running after 10 s"
		stop_mandos TERM
		return
	fi
	wait "$MANDOS_PID" 2>/dev/null
	MANDOS_RC=$?
	check "$desc: the server exits non-zero (got $MANDOS_RC)" test "$MANDOS_RC" -ne 0
	check "$desc: it never listened" sh -c "! grep -q 'Starting main loop' '$MANDOS_LOG'"
	assert_log "ERROR: $problem"
	assert_log "Not starting: the client configuration in $CONFDIR could not be read"
	after=$(sha256sum "$STATE" 2>/dev/null)
	check "$desc: the saved state is untouched" test "$before" = "$after"
}

# 1. bravo is disabled by expiry and that is saved.
start_as_user
wait_listening "$PORT" 10 || bail "server does not start as $user"
assert_log "Client bravo has expired and is disabled" 6
stop_mandos TERM
check "bravo's disabled state is saved" grep -q '"name": "bravo"' "$STATE"

# 2. clients.conf as the mandos package ships it: 0600 root:root.
chown root:root "$CONFDIR/clients.conf"
chmod 0600 "$CONFDIR/clients.conf"
refused "clients.conf 0600 root:root" "$CONFDIR/clients.conf: cannot read: Permission denied"

# 3. Readable again: bravo is still disabled, alpha is served. (bravo's
# timings change, so that a bravo enabled anew could not expire meanwhile;
# its enabled state is not a line of the file, so the saved one stays.)
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section bravo 'timeout = PT1H' 'interval = PT1H' 'checker = false')"
chgrp "$group" "$CONFDIR/clients.conf" "$CONFDIR/mandos.conf"
chmod 0640 "$CONFDIR/clients.conf" "$CONFDIR/mandos.conf"
start_as_user
wait_listening "$PORT" 10 || bail "server does not start once the files are readable"
expect_nothing "bravo, disabled before, still gets nothing" bravo "[::1]:$PORT" 3
expect_secret "alpha is served" alpha "[::1]:$PORT"
stop_mandos TERM

# 4. A clients.d/ the server cannot list.
mkdir -m 0700 "$CONFDIR/clients.d"
refused "clients.d/ that cannot be listed" "$CONFDIR/clients.d: cannot list: Permission denied"
chgrp "$group" "$CONFDIR/clients.d"
chmod 0750 "$CONFDIR/clients.d"

# 5. A drop-in of 17 MiB (over the old limit of 16 MiB; 100,000 clients
# are about 130 MB) loads; one over the size limit (1 GiB,
# mandos-clients.conf(5)) is refused. That one is sparse: its size alone
# refuses it, nothing is read.
{ echo "# padding"; head -c $((17 * 1024 * 1024)) /dev/zero | tr '\0' '#'; echo; } >"$CONFDIR/clients.d/big.conf"
chgrp "$group" "$CONFDIR/clients.d/big.conf"
chmod 0640 "$CONFDIR/clients.d/big.conf"
start_as_user
check "a drop-in of 17 MiB is read and the server starts" wait_listening "$PORT" 20
expect_secret "with it, alpha is served" alpha "[::1]:$PORT"
stop_mandos TERM
truncate -s $((1024 * 1024 * 1024 + 1)) "$CONFDIR/clients.d/big.conf"
refused "a drop-in over the size limit" "$CONFDIR/clients.d/big.conf: cannot read: File too large"
rm -f "$CONFDIR/clients.d/big.conf"

# 6. No clients because none are configured: that starts.
: >"$CONFDIR/clients.conf"
start_as_user
check "a server with no clients configured starts" wait_listening "$PORT" 10
assert_log "No clients defined"
stop_mandos TERM
check "and stops cleanly (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
