#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Installing never fights the package manager (README.md, Installing):
# "meson install --destdir" of this build, then for every file meson's
# manifest (meson-logs/install-log.txt) lists, its path on a real system
#  - is recorded by dpkg for no package ("dpkg -S" finds nothing), so that
#    Debian's mandos package (its /lib/systemd/system/mandos.service,
#    /usr/sbin/mandos, sysusers.d, tmpfiles.d, D-Bus policy) and ours never
#    overwrite each other;
#  - is where its reader looks: units in a directory of the system manager's
#    unit path ranked above /lib/systemd/system, the generator and the
#    catalog in directories the installed systemd searches, sysusers.d and
#    tmpfiles.d in one of their documented directories, the D-Bus policy in
#    one the system bus includes;
# and the installed mandos.service runs the installed binary; and
# "ninja uninstall" removes them all again.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_prog meson dpkg systemd-analyze
[ -n "${BUILD_DIR:-}" ] || bail "BUILD_DIR is not set"

DESTDIR="$SCRATCH/destdir"
if ! meson install -C "$BUILD_DIR" --destdir "$DESTDIR" --no-rebuild --quiet >"$SCRATCH/install.log" 2>&1; then
	bail "meson install --destdir failed: $(tail -n 5 "$SCRATCH/install.log")"
fi
# The manifest of this install: real paths, DESTDIR stripped; files only
# (directories such as /usr/share/dbus-1/system.d are shared by design).
files=()
while IFS= read -r line; do
	[[ $line == \#* || -z $line ]] && continue
	path=${line#"$DESTDIR"}
	[ -d "$DESTDIR$path" ] && [ ! -L "$DESTDIR$path" ] && continue
	files+=("$path")
done <"$BUILD_DIR/meson-logs/install-log.txt"
check "meson's manifest lists the installed files (${#files[@]})" test "${#files[@]}" -ge 8

owned=''
for path in "${files[@]}"; do
	owner=$(dpkg -S "$path" 2>/dev/null | cut -d: -f1 | tr '\n' ' ')
	[ -n "$owner" ] && owned+=" $path (${owner% })"
done
if [ -z "$owned" ]; then
	ok "no installed file is on a path dpkg records for a package: ${files[*]}"
else
	not_ok "installed files on paths dpkg records for a package:$owned"
fi

# where PATTERN: the installed path matching PATTERN (a glob on the path).
where() {
	local p
	for p in "${files[@]}"; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $p == $1 ]] && { printf '%s' "$p"; return 0; }
	done
	return 1
}

# The units: in the system unit path, above /lib/systemd/system.
unit_paths=$(systemd-analyze --system unit-paths 2>/dev/null)
rank() { grep -nx "$1" <<<"$unit_paths" | head -n 1 | cut -d: -f1; }
lib_rank=$(rank /lib/systemd/system)
for unit in mandos.service mandos.socket; do
	p=$(where "*/$unit")
	r=$(rank "$(dirname "${p:-/nonexistent/x}")")
	if [ -n "$p" ] && [ -n "$r" ] && [ -n "$lib_rank" ] && [ "$r" -lt "$lib_rank" ]; then
		ok "$unit is installed in $(dirname "$p"), which the manager searches before /lib/systemd/system"
	else
		not_ok "$unit is installed in a unit directory searched before /lib/systemd/system (it is at '${p:-nowhere}')"
	fi
done

# The generator and the catalog: directories compiled into the installed systemd.
shared=$(find /usr/lib /lib/systemd -maxdepth 3 -name "libsystemd-shared-*.so" 2>/dev/null | head -n 1)
for what in "generator:*/system-generators/mandos-generator" "catalog:*/catalog/mandos.catalog"; do
	p=$(where "${what#*:}")
	d=$(dirname "${p:-/nonexistent/x}")
	if [ -z "$shared" ]; then
		diag "no libsystemd-shared found: ${what%%:*} directory not checked"
	elif [ -n "$p" ] && grep -aqF "$d" "$shared"; then
		ok "the ${what%%:*} is installed in $d, which systemd searches"
	else
		not_ok "the ${what%%:*} is installed in a directory systemd searches (it is at '${p:-nowhere}')"
	fi
done

# sysusers.d and tmpfiles.d: sysusers.d(5), tmpfiles.d(5).
for d in sysusers.d tmpfiles.d; do
	p=$(where "*/$d/mandos.conf")
	case $(dirname "${p:-/x/x}") in
	"/etc/$d" | "/run/$d" | "/usr/local/lib/$d" | "/usr/lib/$d" | "/lib/$d")
		ok "$d/mandos.conf is installed in $(dirname "$p"), which systemd-${d%.d} reads" ;;
	*)
		not_ok "$d/mandos.conf is installed where systemd-${d%.d} reads it (it is at '${p:-nowhere}')" ;;
	esac
done

# The D-Bus policy: where the system bus includes it.
p=$(where "*/se.recompile.Mandos.conf")
case $(dirname "${p:-/x/x}") in
/usr/share/dbus-1/system.d | /etc/dbus-1/system.d)
	ok "the D-Bus policy is installed in $(dirname "$p"), which the system bus reads" ;;
*)
	not_ok "the D-Bus policy is installed where the system bus reads it (it is at '${p:-nowhere}')" ;;
esac

# ExecStart= is our binary, as installed.
p=$(where "*/mandos.service")
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$DESTDIR${p:-/nonexistent}" 2>/dev/null)
bin=$(where "*bin/mandos")
check "the installed mandos.service runs the installed binary (ExecStart=$exec_start; binary: ${bin:-none})" \
	test -n "$exec_start" -a "$exec_start" = "$bin"

# The way back (README.md, Replacing Debian's mandos): "ninja uninstall"
# removes every file this install put there (here, under DESTDIR).
if ninja -C "$BUILD_DIR" uninstall >"$SCRATCH/uninstall.log" 2>&1; then
	left=$(cd "$DESTDIR" && find . ! -type d | sed 's/^\.//' | tr '\n' ' ')
	check "ninja uninstall removes every installed file (left: ${left:-none})" test -z "$left"
else
	not_ok "ninja uninstall ($(tail -n 3 "$SCRATCH/uninstall.log" | tr '\n' '|'))"
fi

finish
