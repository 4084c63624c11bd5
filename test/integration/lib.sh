# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
#
# Shared harness for the integration tests: sourced by each test-*.sh.
#
# Environment (set by meson, see test/meson.build):
#   MANDOS              the server binary under test
#   BUILD_DIR           meson build root (keys are cached under it)
#   TEST_DIR            this directory (peers.py lives here)
#   MANDOS_TEST_NO_SKIP=1  a skip (77) becomes a failure (1)
#   MANDOS_TEST_KEEP=1  keep the scratch directory (logs, configs) for debugging
#
# Every background process is started with setsid, remembered by PID
# (remember_pid) and killed by PID in the EXIT trap. Nothing outside the
# scratch directory and "$BUILD_DIR/test-keys" is written. Only loopback
# addresses are ever connected to.

set -u

PY=/usr/bin/python3
TEST_DIR=${TEST_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
PEERS="$TEST_DIR/peers.py"
TEST_NAME=$(basename "$0" .sh)

# ---------------------------------------------------------------- reporting

_ok_count=0
_fail_count=0

ok() { _ok_count=$((_ok_count + 1)); echo "ok - $*"; }
not_ok() { _fail_count=$((_fail_count + 1)); echo "not ok - $*"; }
diag() { echo "# $*"; }

# check DESCRIPTION COMMAND...: ok if COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

skip() {
	echo "SKIP ($TEST_NAME): $*" >&2
	if [ "${MANDOS_TEST_NO_SKIP:-}" = 1 ]; then
		echo "MANDOS_TEST_NO_SKIP=1: a skip is a failure" >&2
		exit 1
	fi
	exit 77
}

# A hard failure of the harness itself (not of a check).
bail() {
	echo "Bail out! $*"
	_fail_count=$((_fail_count + 1))
	show_logs
	exit 1
}

# Under the valgrind run (MANDOS_VALGRIND=1, see test/meson.build), every
# server this test started wrote a report: each must show no error.
_check_valgrind() {
	local f pid n=0 bad=0 unfinished=0 _
	[ -n "${MANDOS_VALGRIND:-}" ] || return 0
	# A server still running has written no summary yet: stop it as the
	# clean-up would (SIGTERM), but wait for its report.
	for pid in "${_pids[@]}"; do
		f="$VALGRIND_LOG_DIR/valgrind.$pid.log"
		[ -e "$f" ] || continue
		grep -q "ERROR SUMMARY:" "$f" && continue
		alive "$pid" || continue
		kill -TERM "$pid" 2>/dev/null
		wait_until "$(vg_scale 10)" eval 'grep -q "ERROR SUMMARY:" "$f" || ! alive "$pid"'
	done
	for f in "$VALGRIND_LOG_DIR"/valgrind.*.log; do
		[ -e "$f" ] || continue
		# No summary: a server killed with SIGKILL, or a child the server
		# forked (a checker), which runs natively once it execs.
		if ! grep -q "ERROR SUMMARY:" "$f"; then
			unfinished=$((unfinished + 1))
			continue
		fi
		n=$((n + 1))
		if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
			bad=$((bad + 1))
			not_ok "valgrind found errors or definite leaks in the server ($(basename "$f")):"
			grep -v -e 'unhandled amd64-linux syscall' -e 'README_MISSING' -e 'You may be able' \
				-e 'we consider this a bug' -e 'bug_reports' "$f" | sed 's/^/#   /' | head -n 60
		fi
	done
	if [ "$n" = 0 ]; then
		not_ok "valgrind: no server ran to its end under valgrind"
	elif [ "$bad" = 0 ]; then
		ok "valgrind: $n server runs, no memory error, no definite leak"
	fi
	[ "$unfinished" = 0 ] ||
		diag "valgrind: $unfinished reports without a summary (servers killed with SIGKILL, checker processes)"
}

finish() {
	_check_valgrind
	echo "# $TEST_NAME: $_ok_count passed, $_fail_count failed"
	if [ "$_fail_count" -gt 0 ]; then
		show_logs
		exit 1
	fi
	if [ "$_ok_count" -eq 0 ]; then
		echo "# no checks ran"
		exit 1
	fi
	exit 0
}

# ------------------------------------------------------------- requirements

MANDOS_CLIENT=${MANDOS_CLIENT:-}
if [ -z "$MANDOS_CLIENT" ]; then
	for _c in /usr/lib/*/mandos/plugins.d/mandos-client \
		/usr/lib/mandos/plugins.d/mandos-client; do
		if [ -x "$_c" ]; then MANDOS_CLIENT=$_c; break; fi
	done
	unset _c
fi

require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root (mandos-client manages interfaces, the server drops privileges)"
}

# require_root_mount: skip unless / is a mount point. In a plain chroot it
# is not, and `ip netns exec` and `unshare --mount` cannot work there (they
# remount /); a bind mount of the chroot onto itself makes it one.
require_root_mount() {
	mountpoint -q / ||
		skip "needs / to be a mount point (a plain chroot is not; 'mount --bind DIR DIR' before chroot makes it one): network and mount namespaces cannot be made here"
}

require_prog() {
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || skip "needs $p"
	done
}

# The common requirements of every test in this directory.
require_common() {
	require_root
	[ -n "${MANDOS:-}" ] || bail "MANDOS is not set (path to the server binary)"
	[ -x "$MANDOS" ] || bail "MANDOS=$MANDOS is not an executable"
	[ -n "${BUILD_DIR:-}" ] || bail "BUILD_DIR is not set"
	[ -x "$PY" ] || skip "needs $PY"
	[ -x "${MANDOS_CLIENT:-/nonexistent}" ] ||
		skip "needs mandos-client (Debian package mandos-client)${MANDOS_CLIENT:+: $MANDOS_CLIENT is not executable}"
	require_prog mandos-keygen certtool setsid flock timeout
}

# ------------------------------------------------------- scratch and cleanup

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/mandos-it.XXXXXX") || exit 1
# The server drops privileges (to _mandos, or nobody): it must be able to
# traverse the scratch directory to reach its state directory.
chmod 0755 "$SCRATCH"
_pids=()

# systemd-socket-activate starts the server with none of our environment
# but the variables named with -E: put "${SOCKET_ACTIVATE_ENV[@]}" on its
# command line.
# shellcheck disable=SC2034 # used by the tests
SOCKET_ACTIVATE_ENV=()
# shellcheck disable=SC2034
if [ -n "${MANDOS_VALGRIND:-}" ]; then
	export VALGRIND_LOG_DIR="$SCRATCH/valgrind"
	mkdir -p -m 0777 "$VALGRIND_LOG_DIR"
	SOCKET_ACTIVATE_ENV=(-E VALGRIND_LOG_DIR)
	# Some tests start the server as _mandos: the wrapper script and the
	# binary valgrind loads must be readable by that user, which the build
	# tree may not be (a clone under /root, or any 0700 directory).
	if [ -n "${MANDOS_REAL:-}" ]; then
		mkdir -m 0755 "$SCRATCH/bin"
		cp "$MANDOS" "$MANDOS_REAL" "$SCRATCH/bin/"
		chmod 0755 "$SCRATCH/bin/"*
		MANDOS="$SCRATCH/bin/$(basename "$MANDOS")"
		export MANDOS_REAL="$SCRATCH/bin/$(basename "$MANDOS_REAL")"
	fi
fi

# vg_scale N: N, or under valgrind (which makes the server's own work some
# 20 to 50 times slower) N times VG_FACTOR, for a bound on how long the
# server may take. The bounds on serving a client are a few seconds, its
# whole fetch included (mostly the client's work): times 4 they stay below
# the 10 s step deadline, so a server that serves only once its hostile
# peers time out still fails them.
VG_FACTOR=4
vg_scale() {
	if [ -n "${MANDOS_VALGRIND:-}" ]; then echo $(($1 * VG_FACTOR)); else echo "$1"; fi
}

remember_pid() { _pids+=("$1"); }

# proc_state PID: the state letter of process PID (R, S, Z, ...), or nothing.
proc_state() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	printf '%s' "${stat%% *}"
}

# alive PID: true if process PID exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null && [ "$(proc_state "$1")" != Z ]
}

# exited PID: true once PID is gone or a zombie.
exited() {
	! alive "$1"
}

# kill_pid PID: TERM, then KILL after 2 s, then reap. PID was started with
# setsid, so it leads its own process group: whatever it left behind in that
# group (e.g. worker or checker processes) is killed too.
kill_pid() {
	local pid=$1
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null
		kill -KILL -- "-$pid" 2>/dev/null
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	# exited: gone, or a zombie (which still answers kill -0)
	wait_until 2 exited "$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	kill -KILL -- "-$pid" 2>/dev/null
	return 0
}

# mandos-client runs gpg in a private home /tmp/mandosXXXXXX (or under
# /run/tmp), whose gpg-agent outlives a client killed by `timeout`. Those
# that appeared during this test are stopped by PID at the end.
# Every mandos-client the harness runs holds CLIENT_LOCK shared for its
# life (flock -s, between timeout and mandos-client: timeout makes the
# process group that kill_pid signals); the clean-up takes it exclusively, without waiting,
# so that it never removes the home of a client running in another test.
_gpg_homes_before=$(ls -d /tmp/mandos?????? /run/tmp/mandos?????? 2>/dev/null | sort)
CLIENT_LOCK=/run/lock/mandos-test-clients.lock
{ [ -d /run/lock ] && [ -w /run/lock ]; } || CLIENT_LOCK=/tmp/mandos-test-clients.lock
_kill_client_agents() {
	local home pid lockfd
	exec {lockfd}>>"$CLIENT_LOCK" || return 0
	if ! flock -n -x "$lockfd" || pgrep -x mandos-client >/dev/null; then
		exec {lockfd}>&-
		return 0
	fi
	for home in $(comm -13 <(printf '%s\n' "$_gpg_homes_before") \
		<(ls -d /tmp/mandos?????? /run/tmp/mandos?????? 2>/dev/null | sort)); do
		for pid in $(pgrep -f -- "gpg-agent --homedir $home( |\$)"); do
			kill "$pid" 2>/dev/null
		done
		rm -rf -- "$home"
	done
	exec {lockfd}>&-
}


_cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${_pids[@]}"; do
		kill_pid "$pid"
	done
	_kill_client_agents
	if [ -n "${MANDOS_TEST_KEEP:-}" ]; then
		echo "# kept scratch directory $SCRATCH" >&2
	else
		rm -rf "$SCRATCH"
	fi
	exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Dump the server logs (and client stderr) when a check failed.
show_logs() {
	local f
	for f in "$SCRATCH"/*.log; do
		[ -s "$f" ] || continue
		echo "# ---- $(basename "$f") (last 60 lines)"
		tail -n 60 "$f" | sed 's/^/#   /'
	done
}

# -------------------------------------------------------------- networking

# free_port: print a TCP port that is free on the loopback addresses.
free_port() {
	"$PY" "$PEERS" free-port
}

# port_listening PORT: true if some socket in this network namespace
# listens on TCP PORT (IPv4 or IPv6). Reads /proc, so it makes no
# connection the server would have to handle.
port_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# listening_ports_of PID: the TCP ports of the listening sockets that process
# PID holds open, one per line, sorted (read in PID's own network namespace).
listening_ports_of() {
	local pid=$1 inodes hex
	inodes=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null |
		sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p' | tr '\n' ' ')
	[ -n "$inodes" ] || return 0
	awk -v inodes=" $inodes " '$4 == "0A" && index(inodes, " " $10 " ") {
			n = split($2, a, ":"); print a[n] }' \
		"/proc/$pid/net/tcp" "/proc/$pid/net/tcp6" 2>/dev/null |
		while read -r hex; do echo $((16#$hex)); done | sort -un
}

# -------------------------------------------------------------------- keys

KEY_CACHE="${BUILD_DIR:-$SCRATCH}/test-keys"

# The secret mandos-keygen encrypts for client NAME.
secret_of() { printf 'mandos integration test secret for %s' "$1"; }

# ensure_keys NAME [TLS_KEYTYPE]: generate (once per build tree) OpenPGP +
# TLS keys (of TLS_KEYTYPE, as mandos-keygen --tls-keytype takes it; its
# default if none) and the clients.conf section for client NAME under
# $KEY_CACHE/NAME/, and $KEY_CACHE/dhparams.pem. Safe to call from parallel
# tests (flock).
ensure_keys() {
	local name=$1 type=${2:-} dir="$KEY_CACHE/$1" tmp lockfd
	mkdir -p "$KEY_CACHE" || bail "cannot create $KEY_CACHE"
	exec {lockfd}>"$KEY_CACHE/.lock"
	flock "$lockfd"
	if [ ! -s "$KEY_CACHE/dhparams.pem" ]; then
		if ! certtool --generate-dh-params --sec-param=medium \
			>"$KEY_CACHE/dhparams.pem.tmp" 2>/dev/null; then
			exec {lockfd}>&-
			bail "certtool --generate-dh-params failed"
		fi
		mv "$KEY_CACHE/dhparams.pem.tmp" "$KEY_CACHE/dhparams.pem"
	fi
	if [ ! -f "$dir/complete" ]; then
		rm -rf "$dir" "$dir.tmp"
		tmp="$dir.tmp"
		mkdir -p "$tmp"
		secret_of "$name" >"$tmp/secret"
		if ! mandos-keygen --dir "$tmp" ${type:+--tls-keytype "$type"} --force >"$tmp/keygen.out" 2>&1 ||
			! mandos-keygen --dir "$tmp" --password --passfile "$tmp/secret" \
				--name "$name" >"$tmp/section.conf" 2>>"$tmp/keygen.out"; then
			cat "$tmp/keygen.out" >&2
			exec {lockfd}>&-
			bail "mandos-keygen failed for $name"
		fi
		certtool --key-id --hash=sha256 --load-pubkey "$tmp/tls-pubkey.pem" \
			2>/dev/null | tr -d ' \n' | tr 'a-f' 'A-F' >"$tmp/key_id"
		[ -s "$tmp/key_id" ] || { exec {lockfd}>&-; bail "certtool --key-id failed for $name"; }
		touch "$tmp/complete"
		mv "$tmp" "$dir"
	fi
	exec {lockfd}>&-
}

key_dir() { printf '%s' "$KEY_CACHE/$1"; }

# key_id_of NAME: the client's key ID, 64 upper-case hex digits.
key_id_of() { cat "$KEY_CACHE/$1/key_id"; }

# client_section NAME [LINE...]: print NAME's clients.conf section (as made
# by mandos-keygen) followed by the extra LINEs ("key = value").
client_section() {
	local name=$1 line
	shift
	ensure_keys "$name"
	cat "$KEY_CACHE/$name/section.conf"
	for line in "$@"; do
		printf '%s\n' "$line"
	done
}

# keygen_secret NAME TEXT OUT: TEXT encrypted to NAME's OpenPGP key as
# mandos-keygen --password does it, the binary OpenPGP message in OUT (what
# mandos-ctl --secret takes).
keygen_secret() {
	local name=$1 text=$2 out=$3
	printf '%s' "$text" >"$SCRATCH/keygen-pass"
	mandos-keygen --dir "$(key_dir "$name")" --password --passfile "$SCRATCH/keygen-pass" --name "$name" \
		>"$SCRATCH/keygen-section.conf" 2>"$SCRATCH/keygen.err" || bail "mandos-keygen: $(cat "$SCRATCH/keygen.err")"
	"$PY" -c '
import base64, configparser, sys
c = configparser.ConfigParser()
c.read(sys.argv[1])
sys.stdout.buffer.write(base64.b64decode(c[sys.argv[2]]["secret"]))' "$SCRATCH/keygen-section.conf" "$name" >"$out"
}

# write_config DIR [SECTION...]: DIR/mandos.conf ([DEFAULT] plus the lines in
# $MANDOS_CONF_EXTRA, if any) and DIR/clients.conf made of the SECTIONs
# (each a complete section text, e.g. "$(client_section alpha)").
write_config() {
	local dir=$1 s
	shift
	mkdir -p "$dir"
	{
		echo "[DEFAULT]"
		if [ -n "${MANDOS_CONF_EXTRA:-}" ]; then printf '%s\n' "$MANDOS_CONF_EXTRA"; fi
	} >"$dir/mandos.conf"
	: >"$dir/clients.conf"
	for s in "$@"; do
		printf '%s\n\n' "$s" >>"$dir/clients.conf"
	done
}

# server_user: the user a server started as root drops to (mandos(8),
# PRIVILEGES), for the tests that start it as that user directly.
server_user() {
	if getent passwd _mandos >/dev/null; then echo _mandos; else echo nobody; fi
}

# new_statedir: a fresh state directory the unprivileged server user can
# write to. Prints its path.
new_statedir() {
	local d
	d=$(mktemp -d "$SCRATCH/state.XXXXXX")
	if getent passwd _mandos >/dev/null 2>&1; then
		chown _mandos: "$d" 2>/dev/null || chmod 0777 "$d"
	else
		chmod 0777 "$d"
	fi
	printf '%s' "$d"
}

# ---------------------------------------------------------------- D-Bus

# write_bus_config DIR [INCLUDEDIR...]: DIR/bus.conf for a private bus that
# plays the system bus (the policy of Debian's system.conf), listening on
# DIR/system_bus_socket, reading DIR/system.d and the INCLUDEDIRs. The
# configuration is test/private-bus.conf.in (bench/bench.py uses it too).
BUS_CONF_TEMPLATE="$TEST_DIR/../private-bus.conf.in"
write_bus_config() {
	local dir=$1 inc
	shift
	{
		sed "s|@DIR@|$dir|g" "$BUS_CONF_TEMPLATE"
		for inc in "$@"; do
			printf '  <includedir>%s</includedir>\n' "$inc"
		done
		echo '</busconfig>'
	} >"$dir/bus.conf"
}

# run_bus DIR LOG: a dbus-daemon on DIR/bus.conf (see write_bus_config), in
# its own session, remembered; its PID in BUS_PID. Bails out loudly unless
# its socket DIR/system_bus_socket appears within 5 s.
BUS_PID=
run_bus() {
	local dir=$1 log=$2
	setsid dbus-daemon --config-file="$dir/bus.conf" --nofork --nosyslog </dev/null >>"$log" 2>&1 &
	BUS_PID=$!
	remember_pid "$BUS_PID"
	wait_until 5 eval '[ -S "$dir/system_bus_socket" ] || ! alive "$BUS_PID"'
	[ -S "$dir/system_bus_socket" ] ||
		bail "dbus-daemon ($dir/bus.conf) did not start: $(tail -n 5 "$log" 2>/dev/null)"
}

# wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds (true) or
# SECONDS have passed (then CMD's last status).
wait_until() {
	local deadline
	deadline=$(($(now_ms) + $1 * 1000))
	shift
	while [ "$(now_ms)" -lt "$deadline" ]; do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

# now_ms: wall clock in milliseconds, without a fork.
now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	printf '%s' "${t:0:-3}"
}

# ------------------------------------------------------------------ server

# Set by start_mandos / start_mandos_cmd:
MANDOS_PID=
MANDOS_LOG=
_log_seq=0

# new_log: allocate the next server log file name into MANDOS_LOG.
new_log() {
	_log_seq=$((_log_seq + 1))
	MANDOS_LOG="$SCRATCH/mandos.$_log_seq.log"
	: >"$MANDOS_LOG"
}

# start_mandos_cmd CMD...: start CMD (a command line that runs the server)
# in its own session, stdout+stderr to a new $MANDOS_LOG, and remember it.
# Does not wait for anything. Signal dispositions are reset to the default
# (a non-interactive shell starts background commands with SIGINT ignored),
# and variables from a surrounding systemd service are dropped, so that the
# server logs to stderr and makes no use of sockets that are not ours.
CLEAN_ENV=(env --default-signal -u JOURNAL_STREAM -u NOTIFY_SOCKET
	-u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES -u WATCHDOG_USEC
	-u WATCHDOG_PID -u INVOCATION_ID -u STATE_DIRECTORY)
start_mandos_cmd() {
	new_log
	setsid "${CLEAN_ENV[@]}" "$@" </dev/null >"$MANDOS_LOG" 2>&1 &
	MANDOS_PID=$!
	remember_pid "$MANDOS_PID"
}

# wait_listening PORT [SECONDS]: wait until PORT is listening and the server
# is alive. Fails (returns 1) if the server died or time ran out.
wait_listening() {
	local port=$1 max
	max=$(vg_scale "${2:-10}")
	wait_until "$max" eval 'port_listening "$port" || ! kill -0 "$MANDOS_PID" 2>/dev/null'
	if ! kill -0 "$MANDOS_PID" 2>/dev/null; then
		diag "server (pid $MANDOS_PID) exited before listening"
		return 1
	fi
	port_listening "$port" && return 0
	diag "server did not listen on port $port within ${max}s"
	return 1
}

# start_mandos ARGS...: run the server in the foreground/debug mode without
# D-Bus and Zeroconf, on CONFDIR / STATEDIR / PORT (globals; PORT and
# STATEDIR are made if empty), with ARGS appended, and wait until it listens.
# Sets MANDOS_PID, MANDOS_LOG.
start_mandos() {
	[ -n "${CONFDIR:-}" ] || bail "start_mandos: CONFDIR not set"
	[ -n "${PORT:-}" ] || PORT=$(free_port)
	[ -n "${STATEDIR:-}" ] || STATEDIR=$(new_statedir)
	start_mandos_cmd "$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
		--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT" "$@"
	wait_listening "$PORT" 10
}

# server_starts [ARG...]: start_mandos ARG...; "ok server starts", or
# not_ok and the end of the test.
server_starts() {
	if ! start_mandos "$@"; then
		not_ok "server starts"
		finish
	fi
	ok "server starts"
}

# config_with NAME...: CONFDIR=$SCRATCH/conf, with one client section per
# NAME (keys from the key cache).
config_with() {
	local sections=() n
	for n in "$@"; do
		ensure_keys "$n"
		sections+=("$(client_section "$n")")
	done
	CONFDIR="$SCRATCH/conf"
	write_config "$CONFDIR" "${sections[@]}"
}

# stop_mandos [SIGNAL]: send SIGNAL (default TERM) to the server and wait for
# it (max 10 s, then KILL). Sets MANDOS_RC to its exit status (128+n if it
# died by signal n). Must not run in a subshell (it waits for the server).
# shellcheck disable=SC2034
MANDOS_RC=
stop_mandos() {
	local sig=${1:-TERM} pid=$MANDOS_PID
	kill -"$sig" "$pid" 2>/dev/null
	# (under valgrind, its leak check at exit takes a while)
	if ! wait_until "$(vg_scale 10)" exited "$pid"; then
		diag "server (pid $pid) ignored SIG$sig for $(vg_scale 10) s; killing it"
		kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	# shellcheck disable=SC2034 # read by the tests
	MANDOS_RC=$?
}

# ------------------------------------------------------------------- peers

# start_peers NAME SECONDS CMD...: a peer program (peers.py,
# hostile_peers.py, tls-peer) that writes its --ready-file once its
# connections are open: run CMD --ready-file ... in its own session
# (remembered; PID in PEER_PID, output in $SCRATCH/NAME.out) and wait up to
# SECONDS for it. Returns 1, with its output as diagnostics, if it is not
# ready by then (or died).
PEER_PID=
declare -A _peer_pids=()
start_peers() {
	local name=$1 max=$2 ready="$SCRATCH/$1.ready"
	shift 2
	rm -f "$ready"
	setsid "$@" --ready-file "$ready" </dev/null >"$SCRATCH/$name.out" 2>&1 &
	PEER_PID=$!
	_peer_pids[$name]=$PEER_PID
	remember_pid "$PEER_PID"
	wait_until "$max" eval '[ -s "$ready" ] || ! alive "$PEER_PID"'
	[ -s "$ready" ] && return 0
	sed "s/^/# $name: /" "$SCRATCH/$name.out"
	return 1
}

# wait_peers NAME: wait for the peers start_peers started as NAME to end;
# show their output as diagnostics; return their exit status.
wait_peers() {
	local rc
	wait "${_peer_pids[$1]}"
	rc=$?
	sed "s/^/# $1: /" "$SCRATCH/$1.out"
	return "$rc"
}

# ------------------------------------------------------------------ client

# fetch NAME ADDRESS:PORT [TIMEOUT]: run the real mandos-client with NAME's
# keys against ADDRESS:PORT ("[::1]:1234" or "127.0.0.1:1234") for at most
# TIMEOUT seconds (default 10) and print what it printed on stdout (the
# secret, without a newline). Its stderr goes to $SCRATCH/client.log.
# Returns mandos-client's (or timeout's) exit status.
fetch() {
	local name=$1 addr=$2 t=${3:-10}
	client_cmd "$t" "$name" "$name" --connect="$addr" --interface=none
	echo "=== fetch $name $addr (timeout $t s) at $(date +%T.%N)" >>"$SCRATCH/client.log"
	"${CLIENT_CMD[@]}" </dev/null 2>>"$SCRATCH/client.log"
}

# client_cmd TIMEOUT NAME TLS_NAME OPTION...: set CLIENT_CMD to the one
# command line that runs the real mandos-client: with NAME's OpenPGP keys
# and TLS_NAME's TLS keys, one try (--retry=1), the OPTIONs (where to
# look: --connect=... --interface=none, or an interface to browse on),
# killed after TIMEOUT seconds, and holding CLIENT_LOCK shared. Callers
# add a prefix (setsid, ip netns exec) and redirections.
CLIENT_CMD=()
client_cmd() {
	local t=$1 name=$2 tls=$3
	shift 3
	client_key_args "$name" "$tls"
	CLIENT_CMD=(timeout -k 2 "$t" flock -s "$CLIENT_LOCK" "$MANDOS_CLIENT" --retry=1 "$@" "${CLIENT_KEY_ARGS[@]}")
}

# client_key_args NAME [TLS_NAME]: set CLIENT_KEY_ARGS to the mandos-client
# options for NAME's OpenPGP keys and TLS_NAME's (default NAME's) TLS keys.
CLIENT_KEY_ARGS=()
client_key_args() {
	local pgp tls
	ensure_keys "$1"
	ensure_keys "${2:-$1}"
	pgp=$(key_dir "$1")
	tls=$(key_dir "${2:-$1}")
	CLIENT_KEY_ARGS=(--pubkey="$pgp/pubkey.txt" --seckey="$pgp/seckey.txt"
		--tls-pubkey="$tls/tls-pubkey.pem" --tls-privkey="$tls/tls-privkey.pem"
		--dh-params="$KEY_CACHE/dhparams.pem")
}

# fetch_bg NAME OUTFILE SECONDS [PORT] [TLS_NAME]: a mandos-client fetch from
# [::1]:PORT (default $PORT) in the background (its own session, remembered),
# with NAME's OpenPGP keys and TLS_NAME's (default NAME's) TLS keys; sets
# FETCH_PID.
FETCH_PID=
fetch_bg() {
	local name=$1 out=$2 t=$3 port=${4:-$PORT}
	client_cmd "$t" "$name" "${5:-$name}" --connect="[::1]:$port" --interface=none
	setsid "${CLIENT_CMD[@]}" >"$out" 2>>"$SCRATCH/client.log" </dev/null &
	FETCH_PID=$!
	remember_pid "$FETCH_PID"
}

# expect_secret DESC NAME ADDRESS:PORT [TIMEOUT]: check that NAME gets
# exactly its secret (within TIMEOUT seconds; by default 10, vg_scale'd).
expect_secret() {
	local desc=$1 name=$2 addr=$3 t=${4:-$(vg_scale 10)} got
	got=$(fetch "$name" "$addr" "$t")
	if [ "$got" = "$(secret_of "$name")" ]; then
		ok "$desc"
	else
		not_ok "$desc (got ${#got} bytes: '${got:0:80}')"
	fi
}

# expect_nothing DESC NAME ADDRESS:PORT [TIMEOUT]: check that NAME gets
# nothing within TIMEOUT (default 3) seconds.
expect_nothing() {
	local desc=$1 name=$2 addr=$3 t=${4:-3} got
	got=$(fetch "$name" "$addr" "$t")
	if [ -z "$got" ]; then
		ok "$desc"
	else
		not_ok "$desc (got ${#got} bytes: '${got:0:80}')"
	fi
}

# ------------------------------------------------------------------- logs

# log_has PATTERN [SECONDS] [FILE]: wait (default 3 s) until FILE (default
# $MANDOS_LOG) contains the fixed string PATTERN.
log_has() {
	local pat=$1 max=${2:-3} file=${3:-$MANDOS_LOG} _
	wait_until "$max" grep -qF -- "$pat" "$file" 2>/dev/null
}

# assert_log PATTERN [SECONDS]: ok/not ok on the server log containing PATTERN.
assert_log() {
	if log_has "$1" "${2:-3}"; then
		ok "server log has '$1'"
	else
		not_ok "server log has '$1'"
	fi
}

# log_count PATTERN: how many lines of the server log contain PATTERN.
log_count() {
	grep -cF -- "$1" "$MANDOS_LOG" 2>/dev/null || true
}

# secret_text_in_memory PID SECTION_FILE: how many copies of the lines of
# the base64 secret in SECTION_FILE (a client's clients.conf section) are in
# PID's memory, every mapping read (as root, through /proc/PID/mem). A
# server holds a secret only as the bytes it serves: the file's text, the
# values, their continuation lines and interpolations are wiped after parsing.
secret_text_in_memory() {
	"$PY" - "$1" "$2" <<'PY'
import re, sys
pid, section = sys.argv[1], sys.argv[2]
b64 = re.search(r"^secret\s*=\s*\n((?:[ \t]+.*\n?)+)", open(section).read(), re.M).group(1)
needles = [l.strip().encode() for l in b64.splitlines() if len(l.strip()) >= 24]
assert needles, "no base64 line to look for"
# Mappings over 1 GiB are a sanitizer's shadow memory (reserved, mostly
# never touched); the rest is read in chunks that overlap.
CHUNK, OVERLAP = 16 << 20, max(len(n) for n in needles)
hits = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if hi - lo > 1 << 30:
            continue
        at = lo
        while at < hi:
            try:
                mem.seek(at)
                data = mem.read(min(CHUNK + OVERLAP, hi - at))
            except (OSError, OverflowError):  # [vsyscall] and the like
                break
            hits += sum(data.count(n) for n in needles)
            at += CHUNK
print(hits)
PY
}

# log_count_above PATTERN N [SECONDS]: wait (default 3 s) until more than N
# lines of the server log contain PATTERN.
log_count_above() {
	local pat=$1 n=$2
	wait_until "${3:-3}" eval '[ "$(log_count "$pat")" -gt "$n" ]'
}

# ---------------------------------------------------------- hostile peers

HOSTILE="$TEST_DIR/hostile_peers.py"

# raise_fd_limit N: make sure this shell (and what it starts) may open N
# file descriptors; bail out if the hard limit is lower and cannot be raised.
raise_fd_limit() {
	local want=$1
	[ "$(ulimit -n)" = unlimited ] && return 0
	[ "$(ulimit -n)" -ge "$want" ] && return 0
	ulimit -n "$want" 2>/dev/null || ulimit -Sn "$want" 2>/dev/null ||
		bail "cannot raise the file descriptor limit to $want (hard limit $(ulimit -Hn))"
}

# fd_count PID: how many file descriptors process PID has open.
fd_count() {
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

# wait_fd_count PID N [SECONDS]: wait (default 5 s) until process PID has at
# most N file descriptors open. Prints the last count.
wait_fd_count() {
	local pid=$1 n=$2 max=${3:-5} count
	wait_until "$max" eval 'count=$(fd_count "$pid"); [ "$count" -le "$n" ]'
	echo "$count"
	[ "$count" -le "$n" ]
}

# cpu_ticks PID: user + system CPU time of process PID, in clock ticks.
cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo $((${12} + ${13}))
}

# served_ms NAME [FILE]: by the server's own log (default $MANDOS_LOG), the
# milliseconds from accepting the last connection from [::1] before the
# last "Sending secret to NAME" to that line. Tests keep their other peers
# on 127.0.0.1, so the real client's connection is the one from ::1.
served_ms() {
	"$PY" - "$1" "${2:-$MANDOS_LOG}" <<'PY'
import datetime, sys
name, path = sys.argv[1], sys.argv[2]
def when(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
lines = open(path, errors="replace").read().splitlines()
sent = max(i for i, l in enumerate(lines) if l.endswith("Sending secret to " + name))
conn = max(i for i, l in enumerate(lines[:sent]) if "TCP connection from: ('::1'" in l)
print(int((when(lines[sent]) - when(lines[conn])).total_seconds() * 1000))
PY
}
