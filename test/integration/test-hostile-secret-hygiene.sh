#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Secret hygiene (README.md, Security): after serving a secret with --debug
# (every log line on), no server log and no file of the state directory holds
# the secret in any form (the base64 of clients.conf, the raw bytes, hex, or
# the password it encrypts); and the process is not dumpable: no core dump, and
# a process of its own user cannot read its memory or environment. Twice:
# started as root (it drops to _mandos) and started as _mandos.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog setpriv

ensure_keys alpha
CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha)"

# check_memory HOW: no line of alpha's base64 text from clients.conf is
# left in the server's memory (secret_text_in_memory in lib.sh).
check_memory() {
	local how=$1 hits
	hits=$(secret_text_in_memory "$MANDOS_PID" "$(key_dir alpha)/section.conf")
	if [ "$hits" = 0 ]; then
		ok "$how: no line of the secret's base64 text is left in the server's memory"
	else
		not_ok "$how: the secret's base64 text is still in the server's memory ($hits copies of its lines)"
	fi
}

# check_not_dumpable: the kernel hands /proc/PID of a non-dumpable process
# to root, and refuses its environ (ptrace access) to its own user.
check_not_dumpable() {
	local how=$1 uid gid owner
	uid=$(awk '/^Uid:/ { print $3 }' "/proc/$MANDOS_PID/status")
	gid=$(awk '/^Gid:/ { print $3 }' "/proc/$MANDOS_PID/status")
	owner=$(stat -c %u "/proc/$MANDOS_PID/status")
	check "$how: the server runs as an unprivileged user (uid $uid)" test "$uid" != 0
	check "$how: the server is not dumpable (/proc/PID belongs to uid $owner, not $uid)" test "$owner" = 0
	if setpriv --reuid="$uid" --regid="$gid" --clear-groups cat "/proc/$MANDOS_PID/environ" \
		>/dev/null 2>&1; then
		not_ok "$how: a process of the server's own user cannot read its /proc/PID/environ"
	else
		ok "$how: a process of the server's own user cannot read its /proc/PID/environ"
	fi
}

# scan_for_secret HOW FILE...: none of FILEs holds alpha's secret in any form.
scan_for_secret() {
	local how=$1 hits
	shift
	hits=$("$PY" - "$(key_dir alpha)/section.conf" "$(secret_of alpha)" "$@" <<'PY'
import base64, re, sys
section, password, files = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(section).read()
b64 = re.search(r"^secret\s*=\s*\n((?:[ \t]+.*\n?)+)", text, re.M).group(1)
lines = [l.strip() for l in b64.splitlines() if l.strip()]
joined = "".join(lines)
raw = base64.b64decode(joined)
assert len(raw) > 100, "secret too short to scan for"
mid = len(raw) // 2
needles = {"password": password.encode()}
for i, l in enumerate(lines):
    if len(l) >= 24:
        needles["base64 line %d" % (i + 1)] = l.encode()
needles["base64 joined"] = joined[len(joined) // 2:len(joined) // 2 + 48].encode()
for where, at in (("start", 0), ("middle", mid)):
    chunk = raw[at:at + 24]
    needles["raw bytes (%s)" % where] = chunk
    needles["hex (%s)" % where] = chunk.hex().encode()
    needles["HEX (%s)" % where] = chunk.hex().upper().encode()
    needles["base64 of a raw slice (%s)" % where] = base64.b64encode(raw[at + 3:at + 27])
for path in files:
    data = open(path, "rb").read()
    for name, needle in needles.items():
        if needle in data:
            print("%s: %s" % (path, name))
PY
)
	if [ -z "$hits" ]; then
		ok "$how: the secret is in no log or state file ($# files scanned)"
	else
		not_ok "$how: the secret is in no log or state file"
		printf '%s\n' "$hits" | sed 's/^/#   /'
	fi
}

# run HOW [COMMAND PREFIX...]: start the server (as root, or through the
# prefix), check it, serve alpha, stop it, scan its log and state.
run() {
	local how=$1 files
	shift
	PORT=$(free_port)
	STATEDIR=$(new_statedir)
	start_mandos_cmd "$@" "$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
		--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
	if ! wait_listening "$PORT" 10; then
		not_ok "$how: server starts"
		return
	fi
	ok "$how: server starts"
	# It listens before it drops privileges: wait until it has started.
	check "$how: the server starts its main loop" log_has "Starting main loop" 10
	check_not_dumpable "$how"
	check_memory "$how"
	expect_secret "$how: alpha gets its secret" alpha "[::1]:$PORT"
	expect_secret "$how: alpha gets its secret again" alpha "[::1]:$PORT"
	stop_mandos TERM
	check "$how: server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
	mapfile -t files < <(find "$STATEDIR" -type f; echo "$MANDOS_LOG")
	check "$how: the state directory was written" test "${#files[@]}" -ge 2
	scan_for_secret "$how" "${files[@]}"
}

run "started as root"
user=$(server_user)
run "started as $user" setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups
finish
