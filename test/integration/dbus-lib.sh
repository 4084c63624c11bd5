# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
#
# D-Bus harness for the test-dbus-*.sh tests, sourced after lib.sh: a
# private system bus per test (with our policy file, dbus/se.recompile.Mandos.conf),
# the server under test on it, and optionally the reference server
# (/usr/sbin/mandos from Debian's mandos package) on a bus of its own, so
# that mandos-ctl's output can be compared side by side.

SRC_ROOT=$(cd "$TEST_DIR/../.." && pwd)
POLICY_FILE="$SRC_ROOT/dbus/se.recompile.Mandos.conf"
# shellcheck disable=SC2034 # used by the tests
DBUS_CHECK="$TEST_DIR/dbus-check.py"
REFERENCE_MANDOS=${REFERENCE_MANDOS:-/usr/sbin/mandos}
BUS_NAME=se.recompile.Mandos
CLIENT_IFACE=se.recompile.Mandos.Client

require_dbus() {
	require_common
	require_prog dbus-daemon busctl dbus-monitor dbus-send mandos-ctl setpriv
	[ -r "$POLICY_FILE" ] || bail "no policy file at $POLICY_FILE"
	"$PY" -c 'import dbus' 2>/dev/null || skip "needs python3-dbus for $PY"
}

# start_bus NAME VAR: a private bus playing the system bus in $SCRATCH/bus-NAME,
# with our policy file in its system.d; its address goes into variable VAR.
# The daemon's PID is remembered (so do not call this in a subshell); it is
# killed at exit.
start_bus() {
	local dir="$SCRATCH/bus-$1"
	mkdir -p "$dir/system.d"
	chmod 0755 "$dir" "$dir/system.d"
	cp "$POLICY_FILE" "$dir/system.d/"
	write_bus_config "$dir"
	run_bus "$dir" "$dir/dbus.log"
	printf -v "$2" 'unix:path=%s' "$dir/system_bus_socket"
}

# name_owned ADDRESS: true if $BUS_NAME has an owner on the bus at ADDRESS.
name_owned() {
	busctl --address="$1" call org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus NameHasOwner s "$BUS_NAME" 2>/dev/null | grep -qx 'b true'
}

# wait_name ADDRESS PID [SECONDS]: wait until PID owns $BUS_NAME on ADDRESS.
wait_name() {
	local addr=$1 pid=$2 max=${3:-10}
	wait_until "$max" eval 'name_owned "$addr" || ! alive "$pid"'
	name_owned "$addr" && return 0
	if alive "$pid"; then
		diag "$BUS_NAME did not appear on $addr within ${max}s"
	else
		diag "server (pid $pid) died before taking $BUS_NAME"
	fi
	return 1
}

# start_mandos_dbus ARGS...: like lib.sh's start_mandos, but with D-Bus on
# the bus $BUS (started here if empty). Waits for the port and the name.
start_mandos_dbus() {
	[ -n "${CONFDIR:-}" ] || bail "start_mandos_dbus: CONFDIR not set"
	[ -n "${BUS:-}" ] || start_bus mandos BUS
	[ -n "${PORT:-}" ] || PORT=$(free_port)
	[ -n "${STATEDIR:-}" ] || STATEDIR=$(new_statedir)
	start_mandos_cmd env DBUS_SYSTEM_BUS_ADDRESS="$BUS" "$MANDOS" --foreground --debug --no-zeroconf \
		--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT" "$@"
	wait_listening "$PORT" 10 && wait_name "$BUS" "$MANDOS_PID" 10
}

# start_reference ARGS...: the reference server on its own bus $REF_BUS with
# the same CONFDIR; sets REF_PID, REF_PORT, REF_LOG.
REF_PID=
REF_BUS=
start_reference() {
	local statedir
	[ -x "$REFERENCE_MANDOS" ] || skip "needs the reference server $REFERENCE_MANDOS (Debian package mandos)"
	[ -n "$REF_BUS" ] || start_bus reference REF_BUS # a second reference reuses it
	REF_PORT=$(free_port)
	REF_LOG="$SCRATCH/reference.log"
	statedir=$(new_statedir)
	# Its temporary files (Python's pymp-* directories) go to the scratch
	# directory, so that nothing is left behind.
	REF_TMPDIR=$(new_statedir)
	setsid "${CLEAN_ENV[@]}" TMPDIR="$REF_TMPDIR" DBUS_SYSTEM_BUS_ADDRESS="$REF_BUS" "$REFERENCE_MANDOS" --foreground --debug \
		--no-zeroconf --configdir "$CONFDIR" --statedir "$statedir" --port "$REF_PORT" "$@" \
		</dev/null >"$REF_LOG" 2>&1 &
	REF_PID=$!
	remember_pid "$REF_PID"
	wait_name "$REF_BUS" "$REF_PID" 20
}

# bctl ARGS...: busctl on our server's bus.
bctl() { busctl --address="$BUS" "$@"; }

# client_path NAME: the object path of a client whose name is made of [A-Za-z0-9_.-].
client_path() { printf '/clients/%s' "$(printf '%s' "$1" | tr '.-' '__')"; }

# prop NAME PROPERTY: busctl's rendering of a client property ("b true", "t 300000", 's "x"').
prop() {
	bctl get-property "$BUS_NAME" "$(client_path "$1")" "$CLIENT_IFACE" "$2" 2>&1
}

# expect_prop DESC NAME PROPERTY VALUE: check prop's output.
expect_prop() {
	local got
	got=$(prop "$2" "$3")
	if [ "$got" = "$4" ]; then ok "$1"; else not_ok "$1 (got '$got', expected '$4')"; fi
}

# ctl ARGS...: mandos-ctl against our server.
ctl() { DBUS_SYSTEM_BUS_ADDRESS="$BUS" mandos-ctl "$@"; }

# start_monitor FILE [RULE]: dbus-monitor on our bus, writing to FILE;
# waits until it is listening. Sets MONITOR_PID.
MONITOR_PID=
start_monitor() {
	local file=$1 rule=${2:-"type='signal',sender='$BUS_NAME'"} _
	setsid dbus-monitor --address "$BUS" "$rule" >"$file" 2>&1 </dev/null &
	MONITOR_PID=$!
	remember_pid "$MONITOR_PID"
	# A monitor first sees its own NameAcquired/NameLost.
	wait_until 5 grep -q 'member=NameLost' "$file" 2>/dev/null && return 0
	diag "dbus-monitor did not start"
	return 1
}

stop_monitor() {
	sleep 0.3 # let the last signals through
	kill_pid "$MONITOR_PID"
}

# wait_file_has FILE PATTERN [SECONDS]: wait until FILE contains PATTERN (fixed string).
wait_file_has() {
	local file=$1 pat=$2 max=${3:-5} _
	wait_until "$max" grep -qF -- "$pat" "$file" 2>/dev/null
}

# wait_pid PID SECONDS: wait until PID (a child) has exited.
wait_pid() {
	wait_until "$2" exited "$1" || return 1
	wait "$1" 2>/dev/null
	return 0
}

# server_alive_and_serving DESC NAME: the server process lives and a real fetch works.
server_alive_and_serving() {
	check "$1: server still running" alive "$MANDOS_PID"
	expect_secret "$1: a real fetch still gets the secret" "$2" "[::1]:$PORT" 10
}
