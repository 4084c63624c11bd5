# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
#
# Harness of the system tests: a real systemd manager (the installed one)
# as PID 1 of a throwaway pid+mount+cgroup+uts+ipc+net namespace, with only
# the units the test writes into $SD_DIR/units (plus the few stock ones a
# manager needs: journald, the D-Bus system bus, the shutdown targets).
# Sourced after ../integration/lib.sh, whose reporting (ok, not_ok, finish),
# scratch directory and configuration helpers it uses.
#
# Environment (set by meson, see test/meson.build):
#   SYSTEM_TEST_DIR   this directory (namespace-init.sh lives here)
#   SD_LOG_LEVEL      the namespace manager's log level (default info)
#   SD_GENERATOR_PATH if set (before sd_boot): the only generator directory
#                     the manager runs, and /run/systemd/generator is in its
#                     unit path (namespace-init.sh)
#   SD_UNIT_PATH_EXTRA more unit directories (":"-separated), searched after
#                     those (before sd_boot)
#
# Set by a test before sd_boot:
#   SD_LAYOUT=host    the manager also reads the standard unit directories
#                     (/etc/systemd/system, /run/systemd/generator,
#                     /usr/local/lib/systemd/system, /lib/systemd/system,
#                     ...) and runs the generators installed in the
#                     namespace, as a real host's manager does, and /usr is
#                     copy-on-write like /etc and /var; of the host's units
#                     (and enablement links) only the stock ones and those
#                     in SD_HOST_UNITS are seen, of its tmpfiles.d only those
#                     in SD_HOST_TMPFILES, and none of its generators (see
#                     namespace-init.sh). For a test of what an admin does
#                     to a host: install, enable, divert.
#   SD_HOST_UNITS     unit names, space-separated (with SD_LAYOUT=host)
#   SD_HOST_TMPFILES  tmpfiles.d file names, space-separated (same)
#
# Life cycle:
#   sd_require             skip (77) unless root, a systemd and cgroup v2 exist
#   sd_init                make $SD_DIR/units with the stock units
#   sd_unit NAME <<EOF     add a unit (before sd_boot, or sd_reload after it)
#   sd_boot                start the manager; sets SD_PID1 (its host PID)
#   sd_run CMD...          run CMD inside the namespace (nsenter)
#   sd_halt                stop it; also run by the EXIT trap, so that the
#                          manager and everything under it is always gone
#
# Nothing of the host is changed but one cgroup, made for the namespace next
# to the test's own and removed at the end. The manager's /run, /dev, /proc,
# network and writes to /etc and /var are its own (see namespace-init.sh).

SYSTEM_TEST_DIR=${SYSTEM_TEST_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
SYSTEMD_BIN=${SYSTEMD_BIN:-/lib/systemd/systemd}

SD_DIR=
SD_PID1=
SD_UNSHARE_PID=
SD_CGROUP=

# The stock units every test manager loads (links to the installed ones).
SD_STOCK_UNITS=(basic.target sysinit.target sockets.target timers.target
	paths.target slices.target local-fs.target swap.target network.target
	shutdown.target umount.target final.target exit.target halt.target
	poweroff.target systemd-exit.service systemd-halt.service
	systemd-poweroff.service dbus.socket dbus.service
	systemd-journald.socket systemd-journald.service
	systemd-journald-dev-log.socket)

# ------------------------------------------------------------ requirements

# The directory of the cgroup v2 hierarchy on the host: /sys/fs/cgroup
# (unified) or /sys/fs/cgroup/unified (hybrid); nothing if there is none.
_sd_cgroup2_root() {
	local d
	for d in /sys/fs/cgroup /sys/fs/cgroup/unified; do
		if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then
			printf '%s' "$d"
			return 0
		fi
	done
}

sd_require() {
	local u
	require_root
	require_prog unshare nsenter setsid systemctl systemd-cgls journalctl timeout mountpoint
	require_root_mount
	[ -x "$SYSTEMD_BIN" ] || skip "needs systemd ($SYSTEMD_BIN)"
	command -v dbus-daemon >/dev/null 2>&1 || skip "needs dbus-daemon (Debian package dbus)"
	for u in "${SD_STOCK_UNITS[@]}"; do
		[ -e "/lib/systemd/system/$u" ] || skip "needs the stock unit /lib/systemd/system/$u"
	done
	[ -n "$(_sd_cgroup2_root)" ] || skip "needs a cgroup v2 hierarchy (unified or hybrid)"
}

# ------------------------------------------------------------------- units

# sd_init: the manager's scratch directory and its unit directory, with the
# stock units and mandos-test.target, the unit it boots into.
# SD_WANTS: more units for the target to pull in at boot.
sd_init() {
	local u
	SD_DIR="$SCRATCH/sd"
	mkdir -p "$SD_DIR/units"
	for u in "${SD_STOCK_UNITS[@]}"; do
		ln -sf "/lib/systemd/system/$u" "$SD_DIR/units/$u"
	done
	sd_unit mandos-test.target <<EOF
[Unit]
Description=Boot target of a mandos system test
Requires=basic.target
Wants=dbus.socket dbus.service systemd-journald.socket systemd-journald.service ${SD_WANTS:-}
After=basic.target
AllowIsolate=yes
EOF
}

# sd_unit NAME: write standard input as unit NAME.
sd_unit() {
	cat >"$SD_DIR/units/$1"
}

# sd_reload: make a running manager see new or changed units.
sd_reload() {
	sd_run systemctl daemon-reload
}

# -------------------------------------------------------------- life cycle

# sd_run CMD...: run CMD in every namespace of the test manager (its /proc,
# /run, cgroup tree and network: systemctl, journalctl and busctl talk to it).
sd_run() {
	nsenter -t "$SD_PID1" -a -r -w "$@"
}

# sd_client_in_namespace: from here on, MANDOS_CLIENT runs the real client in
# the manager's network namespace (where its sockets listen), for fetch and
# expect_secret (../integration/lib.sh). After sd_boot.
sd_client_in_namespace() {
	local real=$MANDOS_CLIENT
	MANDOS_CLIENT="$SCRATCH/mandos-client-in-namespace"
	printf '#!/bin/sh\nexec nsenter -t %s -n %s "$@"\n' "$SD_PID1" "$real" >"$MANDOS_CLIENT"
	chmod +x "$MANDOS_CLIENT"
}

# sd_boot [SECONDS]: start the manager and wait (default 20 s) until its
# boot is over and the system bus answers. Bails out on failure.
sd_boot() {
	local max=${1:-20} root self state _
	root=$(_sd_cgroup2_root)
	self=$(sed -n 's/^0:://p' /proc/self/cgroup)
	self=${self%/}
	# A cgroup of its own: after "unshare --cgroup" it is the namespace's
	# root, under which the manager builds its tree.
	SD_CGROUP="$root$self/mandos-test-$$"
	mkdir "$SD_CGROUP" || bail "cannot create the cgroup $SD_CGROUP"
	(
		echo "$BASHPID" >"$SD_CGROUP/cgroup.procs" || exit 1
		export SD_LAYOUT SD_HOST_UNITS SD_HOST_TMPFILES
		export SD_STOCK_UNIT_NAMES="${SD_STOCK_UNITS[*]}"
		exec setsid unshare --pid --fork --kill-child --mount --cgroup \
			--uts --ipc --net --propagation private \
			"$SYSTEM_TEST_DIR/namespace-init.sh" "$SD_DIR"
	) </dev/null >"$SD_DIR/unshare.log" 2>&1 &
	SD_UNSHARE_PID=$!
	remember_pid "$SD_UNSHARE_PID"

	wait_until "$max" eval '_sd_find_pid1 || ! kill -0 "$SD_UNSHARE_PID" 2>/dev/null'
	if ! _sd_find_pid1; then
		sed 's/^/# unshare: /' "$SD_DIR/unshare.log" "$SD_DIR/console.log" 2>/dev/null
		bail "the namespace's systemd did not start"
	fi
	wait_until "$max" eval '_sd_bus_up || ! kill -0 "$SD_PID1" 2>/dev/null'
	state=$(timeout "$max" nsenter -t "$SD_PID1" -a -r -w systemctl is-system-running --wait 2>/dev/null)
	case $state in
	running) ;;
	degraded)
		diag "the test manager booted degraded; failed units:"
		sd_run systemctl --no-pager --failed 2>&1 | sed 's/^/#   /'
		;;
	*)
		sed 's/^/# console: /' "$SD_DIR/console.log" 2>/dev/null | tail -n 30
		bail "the test manager did not finish booting within ${max}s (state '$state')"
		;;
	esac
	diag "test manager up: host PID $SD_PID1, cgroup $SD_CGROUP"
}

# _sd_find_pid1: set SD_PID1 to the manager, the only child of unshare once
# it has exec'd systemd; false (and SD_PID1 empty) before that.
_sd_find_pid1() {
	SD_PID1=$(awk '{ print $1 }' "/proc/$SD_UNSHARE_PID/task/$SD_UNSHARE_PID/children" 2>/dev/null)
	[ -n "$SD_PID1" ] && [ "$(cat "/proc/$SD_PID1/comm" 2>/dev/null)" = systemd ] && return 0
	SD_PID1=
	return 1
}

# _sd_bus_up: the namespace's system bus is up and PID 1 is on it.
_sd_bus_up() {
	[ -S "/proc/$SD_PID1/root/run/dbus/system_bus_socket" ] &&
		sd_run busctl --system status org.freedesktop.systemd1 >/dev/null 2>&1
}

# sd_halt: ask the manager to exit, then SIGKILL its PID 1 (which kills
# every process of the pid namespace), reap unshare and remove the cgroup.
sd_halt() {
	if [ -n "$SD_PID1" ]; then
		timeout 5 nsenter -t "$SD_PID1" -a -r -w systemctl exit >/dev/null 2>&1
		wait_until 3 eval '! kill -0 "$SD_PID1" 2>/dev/null'
		kill -KILL "$SD_PID1" 2>/dev/null
		SD_PID1=
	fi
	if [ -n "$SD_UNSHARE_PID" ]; then
		kill -0 "$SD_UNSHARE_PID" 2>/dev/null && kill -KILL "$SD_UNSHARE_PID" 2>/dev/null
		wait "$SD_UNSHARE_PID" 2>/dev/null
		SD_UNSHARE_PID=
	fi
	if [ -n "$SD_CGROUP" ] && [ -d "$SD_CGROUP" ]; then
		# Removable once the last process of the namespace is gone.
		wait_until 2 eval 'find "$SD_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$SD_CGROUP" ]'
		[ -d "$SD_CGROUP" ] && echo "# could not remove the cgroup $SD_CGROUP" >&2
	fi
	SD_CGROUP=
	return 0
}

_sd_cleanup() {
	local rc=$?
	sd_halt
	(exit "$rc")
	_cleanup
}
trap _sd_cleanup EXIT

# sd_dump_journal FILE: the manager's journal (all of it), for the logs shown
# when a check failed.
sd_dump_journal() {
	[ -n "$SD_PID1" ] || return 0
	timeout 10 nsenter -t "$SD_PID1" -a -r -w journalctl --no-pager -o short-precise >"$1" 2>&1
}

# ---------------------------------------------------------------- queries

# sd_units PATTERN: the names of the units loaded in the manager (in any
# state) that match PATTERN, one a line.
sd_units() {
	sd_run systemctl list-units --all --plain --no-legend --no-pager "$1" 2>/dev/null |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /\./) { print $i; break } }'
}

# sd_prop UNIT PROPERTY: the value of PROPERTY of UNIT.
sd_prop() {
	sd_run systemctl show -P "$2" "$1" 2>/dev/null
}

# sd_main_pid UNIT: the main PID of UNIT, as seen inside the namespace.
sd_main_pid() {
	sd_prop "$1" MainPID
}

# sd_args NSPID: the argument list of namespace process NSPID, joined by spaces.
sd_args() {
	sd_run cat "/proc/$1/cmdline" 2>/dev/null | tr '\0' ' ' | sed 's/ $//'
}

# sd_cgroup_of NSPID: the cgroup v2 path of namespace process NSPID
# (relative to the namespace's root, as the manager's ControlGroup).
sd_cgroup_of() {
	sd_run sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null
}

# sd_children NSPID: the child processes of namespace process NSPID, made
# by any of its threads (the server's checkers come from a thread of its own).
sd_children() {
	sd_run sh -c 'cat /proc/"$1"/task/*/children' sh "$1" 2>/dev/null | tr ' ' '\n' | sed '/^$/d'
}

# sd_stat_field NSPID N: field N of /proc/NSPID/stat (3 state, 4 ppid,
# 5 process group, 6 session) of namespace process NSPID.
sd_stat_field() {
	local stat f
	stat=$(sd_run cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	read -r -a f <<<"$stat"
	printf '%s' "${f[$(($2 - 3))]}"
}

# sd_uid_of NSPID: the effective UID of namespace process NSPID.
sd_uid_of() {
	# shellcheck disable=SC2016 # awk's $3
	sd_run awk '/^Uid:/ { print $3 }' "/proc/$1/status" 2>/dev/null
}

# sd_pids_with_args ARGS: the PIDs (inside the namespace) of its processes
# whose argument list, joined by spaces, is exactly ARGS. Zombies have no
# arguments and are not listed (see sd_zombies).
sd_pids_with_args() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	sd_run /bin/sh -c 'grep -azH "" /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" "\n"' |
		awk -v want="$1" '
			function done() { if (file != "" && args == want) { split(file, p, "/"); print p[3] } }
			{
				i = index($0, ":"); f = substr($0, 1, i - 1); a = substr($0, i + 1)
				if (f != file) { done(); file = f; args = a } else args = args " " a
			}
			END { done() }'
}

# sd_zombies: the zombie processes of the namespace, "PID PARENT" a line.
sd_zombies() {
	sd_run /bin/sh -c 'cat /proc/[0-9]*/stat 2>/dev/null' |
		sed -n 's/^\([0-9]*\) (.*) Z \([0-9]*\) .*/\1 \2/p'
}

# ------------------------------------------------------------ more mounts

# sd_private_tmp [PATH...]: give the namespace a /tmp of its own (a tmpfs),
# so that what its services leave there (PrivateTmp= directories, which a
# killed manager never removes) cannot reach the host's /tmp. Each PATH
# (default: $SCRATCH) stays visible inside at its own path. Call after
# sd_boot, before starting a unit that uses /tmp.
sd_private_tmp() {
	[ $# -gt 0 ] || set -- "$SCRATCH"
	# shellcheck disable=SC2016 # expanded by the inner shell
	sd_run /bin/sh -eu -c '
		i=0
		for p in "$@"; do
			i=$((i + 1))
			mkdir -p "/run/mandos-test-keep/$i"
			mount --bind "$p" "/run/mandos-test-keep/$i"
		done
		mount -t tmpfs -o mode=1777,nosuid,nodev,size=64m sd-tmp /tmp
		i=0
		for p in "$@"; do
			i=$((i + 1))
			mkdir -p "$p"
			mount --move "/run/mandos-test-keep/$i" "$p"
		done
		rm -rf /run/mandos-test-keep' sh "$@"
}

# sd_meson_install: install the build with "meson install --destdir" into
# DESTDIR ($SCRATCH/destdir) and set where meson put each file, as its path
# on a real system (empty if nowhere): SERVICE_PATH, SOCKET_PATH,
# POLICY_PATH, SYSUSERS_PATH, TMPFILES_PATH, GENERATOR_PATH. Bails out if
# the install fails or puts no mandos.service or mandos.socket anywhere.
# shellcheck disable=SC2034 # read by the tests
sd_meson_install() {
	DESTDIR="$SCRATCH/destdir"
	meson install -C "$BUILD_DIR" --destdir "$DESTDIR" --no-rebuild --quiet >"$SCRATCH/meson-install.log" 2>&1 ||
		bail "meson install --destdir failed: $(tail -n 5 "$SCRATCH/meson-install.log")"
	SERVICE_PATH=$(sd_installed mandos.service)
	SOCKET_PATH=$(sd_installed mandos.socket)
	POLICY_PATH=$(sd_installed dbus-1/system.d/se.recompile.Mandos.conf)
	SYSUSERS_PATH=$(sd_installed sysusers.d/mandos.conf)
	TMPFILES_PATH=$(sd_installed tmpfiles.d/mandos.conf)
	GENERATOR_PATH=$(sd_installed system-generators/mandos-generator)
	[ -n "$SERVICE_PATH" ] && [ -n "$SOCKET_PATH" ] ||
		bail "meson install put no mandos.service or mandos.socket in $DESTDIR"
}

# sd_installed PATH: where under DESTDIR meson put the file ending in PATH
# (its path on a real system), or nothing.
sd_installed() {
	(cd "$DESTDIR" && find . -path "*/$1" | sed 's/^\.//' | head -n 1)
}

# sd_section NAME KEY=VALUE...: a clients.conf section with a made-up key
# ID, for clients that never connect (only their checkers matter), with
# the given settings.
sd_section() {
	local name=$1 kv
	shift
	printf '[%s]\n' "$name"
	printf 'key_id = %s\n' "$(printf 'key %s' "$name" | sha256sum | cut -c1-64)"
	printf 'fingerprint = %s\n' "$(printf 'fpr %s' "$name" | sha256sum | cut -c1-40)"
	printf 'secret = %s\n' "$(printf 'secret of %s' "$name" | base64 -w0)"
	for kv in "$@"; do
		printf '%s = %s\n' "${kv%%=*}" "${kv#*=}"
	done
}

# sd_overlay DIR TREE: inside the namespace, show TREE over DIR, read-only
# (an overlay whose upper lower layer is TREE, the lower one DIR itself):
# e.g. sd_overlay /usr "$DESTDIR/usr" after "meson install --destdir".
# Call before starting the units that should see it.
sd_overlay() {
	sd_run mount -t overlay -o "ro,lowerdir=$2:$1" "mandos-test-overlay" "$1"
}
