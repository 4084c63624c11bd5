#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The first process of a throwaway pid+mount+cgroup(+uts+ipc+net) namespace
# made by sd_boot (lib.sh). It gives the namespace its own /proc, /run, /dev,
# a cgroup2 tree rooted at the namespace's cgroup, and copy-on-write
# overlays over /etc and /var (their writes land in a tmpfs under SD_DIR),
# then becomes systemd, the namespace's PID 1, loading units from
# SD_DIR/units and nowhere else. Nothing it mounts is visible to the host.
#
# usage: namespace-init.sh SD_DIR
set -eu

sd_dir=${1:?usage: namespace-init.sh SD_DIR}

# Mounts made here must never propagate back to the host.
mount --make-rprivate /

# A fresh network namespace has only a loopback interface, and it is down.
if command -v ip >/dev/null 2>&1; then
	ip link set lo up 2>/dev/null || true
fi

mount -t proc -o nosuid,nodev,noexec proc /proc

# cgroup v2 only ("unified" for systemd), rooted where sd_boot put us: in
# our cgroup namespace that cgroup is "/".
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup

mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m tmpfs /run

# Copy-on-write /etc and /var: the manager and its services may write there
# (journal files, machine-id, ...) without the host seeing any of it.
ovl=$sd_dir/overlay
mkdir -p "$ovl"
mount -t tmpfs -o mode=0755,size=256m sd-overlay "$ovl"
for d in etc var; do
	mkdir -p "$ovl/$d.upper" "$ovl/$d.work"
	mount -t overlay overlay \
		-o "lowerdir=/$d,upperdir=$ovl/$d.upper,workdir=$ovl/$d.work" "/$d"
done

# SD_LAYOUT=host: the manager reads the host's unit directories as a real
# host's manager does (so that what an admin installs under /etc or
# /usr/local, and what a generator writes, is loaded), but each of them
# only shows the units named in SD_HOST_UNITS (and the stock ones of lib.sh,
# SD_STOCK_UNIT_NAMES): every other entry is removed in the copy-on-write view
# (an overlay whiteout; the host keeps it), so that none of the host's
# services, timers or wants can start in here. /usr is copy-on-write too
# (an install lands in the tmpfs), no host generator runs, and tmpfiles.d
# keeps only the files named in SD_HOST_TMPFILES: "systemd-tmpfiles
# --create" in here must not reach the host's /tmp or /sys.
# _keep_only DIR NAMES: remove the entries of DIR whose names are not in
# NAMES; in its *.wants and *.requires directories, the links not named in
# NAMES; its UNIT.d drop-in directories go with UNIT.
_keep_only() {
	local dir=$1 names=" $2 " e n sub
	[ -d "$dir" ] || return 0
	for e in "$dir"/* "$dir"/.[!.]*; do
		[ -e "$e" ] || [ -L "$e" ] || continue
		n=${e##*/}
		case $n in
		*.wants | *.requires)
			if [ -d "$e" ] && [ ! -L "$e" ]; then
				for sub in "$e"/*; do
					[ -e "$sub" ] || [ -L "$sub" ] || continue
					case $names in *" ${sub##*/} "*) ;; *) rm -rf "$sub" ;; esac
				done
				continue
			fi ;;
		*.d) n=${n%.d} ;;
		esac
		case $names in *" $n "*) ;; *) rm -rf "$e" ;; esac
	done
}
if [ "${SD_LAYOUT:-}" = host ]; then
	mkdir -p "$ovl/usr.upper" "$ovl/usr.work"
	mount -t overlay overlay \
		-o "lowerdir=/usr,upperdir=$ovl/usr.upper,workdir=$ovl/usr.work" /usr
	keep="${SD_STOCK_UNIT_NAMES:-} ${SD_HOST_UNITS:-}"
	for d in /usr/lib/systemd/system /etc/systemd/system /usr/local/lib/systemd/system; do
		_keep_only "$d" "$keep"
	done
	for d in /usr/lib/systemd/system-generators /etc/systemd/system-generators \
		/usr/local/lib/systemd/system-generators; do
		_keep_only "$d" ""
	done
	for d in /usr/lib/tmpfiles.d /etc/tmpfiles.d /usr/local/lib/tmpfiles.d; do
		_keep_only "$d" "${SD_HOST_TMPFILES:-}"
	done
fi

# A private /dev, so that nothing in here can reach the host's console or
# terminals: a few harmless device nodes bound from the host, a devpts of
# its own, and a "console" that is a plain file (SD_DIR/console.log).
dev=$ovl/dev
mkdir -p "$dev"
mount -t tmpfs -o mode=0755,nosuid,size=1m sd-dev "$dev"
for node in null zero full random urandom tty; do
	: >"$dev/$node"
	mount --bind "/dev/$node" "$dev/$node"
done
mkdir -p "$dev/pts" "$dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$dev/shm"
ln -s pts/ptmx "$dev/ptmx"
ln -s /proc/self/fd "$dev/fd"
ln -s /proc/self/fd/0 "$dev/stdin"
ln -s /proc/self/fd/1 "$dev/stdout"
ln -s /proc/self/fd/2 "$dev/stderr"
: >"$sd_dir/console.log"
: >"$dev/console"
mount --bind "$sd_dir/console.log" "$dev/console"
mount --move "$dev" /dev

# SYSTEMD_UNIT_PATH without a trailing ":" replaces the whole search path:
# the host's units (and anything generators write) are never loaded, so
# nothing like systemd-tmpfiles can run in here and touch shared
# directories such as /tmp. "container=" makes "systemctl exit" end it.
# With SD_GENERATOR_PATH (lib.sh), the manager runs the generators there
# and no other (SYSTEMD_GENERATOR_PATH, likewise without ":"), and loads
# what they write into /run/systemd/generator (drop-ins included).
# With SD_LAYOUT=host, a trailing ":" appends the standard search path
# (filtered above), generator directories included, and SD_GENERATOR_PATH
# is not used: the standard generator directories are (filtered above).
unit_path=$sd_dir/units
generator_env=
if [ -n "${SD_GENERATOR_PATH:-}" ] && [ "${SD_LAYOUT:-}" != host ]; then
	unit_path=$unit_path:/run/systemd/generator
	generator_env=SYSTEMD_GENERATOR_PATH=$SD_GENERATOR_PATH
fi
# SD_UNIT_PATH_EXTRA: more unit directories, searched after those, in order
# (e.g. /usr/local/lib/systemd/system and a directory with a distribution
# unit, to see the first shadow the second).
[ -n "${SD_UNIT_PATH_EXTRA:-}" ] && unit_path=$unit_path:$SD_UNIT_PATH_EXTRA
[ "${SD_LAYOUT:-}" = host ] && unit_path=$unit_path:
exec env -i container=mandos-test \
	SYSTEMD_UNIT_PATH="$unit_path" ${generator_env:+"$generator_env"} \
	SYSTEMD_LOG_LEVEL="${SD_LOG_LEVEL:-info}" \
	/lib/systemd/systemd --system --unit=mandos-test.target --show-status=no \
	--log-target=journal --log-level="${SD_LOG_LEVEL:-info}" --log-color=no \
	</dev/null >>"$sd_dir/console.log" 2>&1
