#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317,SC2015 # functions called by traps and wait_until; A && B || bail
#
# Replacing Debian's mandos 1.8.16 on a host, end to end (README.md,
# "Replacing Debian's mandos"), under a real systemd manager (lib.sh with
# SD_LAYOUT=host: the manager reads /etc/systemd/system, /usr/local/...,
# /lib/systemd/system and runs installed generators like a host's; /etc,
# /var and /usr are copy-on-write, so the host keeps its files).
#
# Inside the namespace, the package's files are the host's own, as dpkg
# installed them: its unit /lib/systemd/system/mandos.service (and its
# enablement link, if the host has one), /etc/mandos, /etc/default/mandos,
# the D-Bus policy /etc/dbus-1/system.d/mandos.conf, sysusers.d and
# tmpfiles.d; dpkg's database is the host's (seen copy-on-write).
# avahi-daemon (the reference's unit has Requisite=avahi-daemon.service, and
# Zeroconf on by default) runs from its own unit too, in the namespace's
# network (loopback only).
#
#  1. The reference, started from its own unit with two test clients added
#     to the package's clients.conf and "port = N" added to its mandos.conf:
#     the real mandos-ctl disables bravo (-d) and gives alpha a new secret
#     (--secret, an OpenPGP message to alpha's key); alpha is served it on
#     port N, bravo nothing. "mandos-ctl -v" (and --dump-json, the same
#     properties) is recorded; "systemctl stop mandos" makes it write
#     /var/lib/mandos/clients.pickle.
#  2. The README's replacement steps, the fenced block after the
#     "<!-- replace-steps -->" marker, run verbatim as root in the namespace,
#     in a copy of the source tree (MANDOS_SOURCE, default this one): the
#     block builds and installs ours as the README says. (MANDOS_SOURCE=a
#     worktree of an older commit shows what that commit would do.)
#  3. After the switch, with the real mandos-client, mandos-ctl and
#     mandos-monitor (under tmux): bravo is still disabled and gets nothing;
#     alpha is served the secret set over D-Bus, on port N; every property
#     "mandos-ctl -v" shows is what the reference showed (time fields aside).
#  4. "dpkg -V mandos" reports nothing more than it did before the switch
#     (the two conffiles this test edited as an admin would), or only a
#     diversion the README's steps made ("dpkg-divert --list" shows it).
#     The reference's clients.pickle is still there (under its name or
#     another), byte for byte.
#  5. The README's way back (the fenced block after
#     "<!-- replace-back-steps -->", or else after "**Going back**")
#     brings the reference back: its own unit starts, serves alpha, and
#     bravo is still disabled (a host the admin disabled must not get its
#     secret because the admin went back).
#  6. On the host, nothing changed: dpkg -V mandos, diversions, /etc/mandos,
#     /var/lib/mandos, unit directories, /usr/local.

# shellcheck source=../integration/lib.sh
. "${TEST_DIR:?TEST_DIR (test/integration) is not set}/lib.sh"
# shellcheck source=lib.sh
. "${SYSTEM_TEST_DIR:-$(cd "$(dirname "$0")" && pwd)}/lib.sh"

SOURCE_DIR=$(cd "$SYSTEM_TEST_DIR/../.." && pwd)
README=${README:-$SOURCE_DIR/README.md}
REF_VERSION=1.8.16
MANDOS_MONITOR=/usr/sbin/mandos-monitor

sd_require
require_common
require_prog dpkg dpkg-query dpkg-divert tmux busctl base64 cmp git tar meson ninja
[[ $(dpkg-query -W -f '${Status} ${Version}' mandos 2>/dev/null) == "install ok installed $REF_VERSION"-* ]] ||
	skip "needs Debian's mandos $REF_VERSION installed (the reference server)"
[ -x /usr/sbin/avahi-daemon ] && [ -e /lib/systemd/system/avahi-daemon.service ] ||
	skip "needs avahi-daemon (the reference's unit requires it)"
[ -x "$MANDOS_MONITOR" ] || skip "needs $MANDOS_MONITOR (Debian package mandos)"

PORT=28716      # "port = N" in mandos.conf: not ours (9876), not random
ADDR="[::1]:$PORT"

# --------------------------------------------------------------- README

# readme_block MARKER: the first fenced block after the line MARKER.
readme_block() {
	awk -v marker="$1" '
		index($0, marker) { found = 1; next }
		found && !open && /^[ \t]*```/ { open = 1; next }
		open && /^[ \t]*```/ { exit }
		open { print }' "$README"
}

# ------------------------------------------------------------- manager

ensure_keys alpha
ensure_keys bravo

# What the host has, to show at the end that none of it changed: dpkg's
# view of the package, its configuration and state, and what an install
# under /usr/local or a diversion would leave.
host_view() {
	dpkg -V mandos 2>&1
	dpkg-divert --list 2>&1 | grep -F mandos
	find /etc/mandos /etc/default/mandos /etc/dbus-1/system.d /var/lib/mandos /lib/systemd/system/mandos.service \
		/etc/systemd/system /usr/local/lib /usr/local/sbin /usr/share/dbus-1/system.d \
		-xdev \( -type f -o -type l \) -printf '%p %m %u %s %T@\n' 2>/dev/null | sort
}
host_view >"$SCRATCH/host-before.txt"

SD_LAYOUT=host
SD_HOST_UNITS="multi-user.target mandos.service avahi-daemon.service avahi-daemon.socket dbus-org.freedesktop.Avahi.service"
SD_HOST_TMPFILES="mandos.conf"
sd_init
sd_boot 20
sd_private_tmp "$SCRATCH" "$BUILD_DIR" || bail "cannot give the namespace a /tmp of its own"

# mandos-client in the manager's network namespace, for fetch and
# expect_secret (../integration/lib.sh).
sd_client_in_namespace

ctl() { sd_run mandos-ctl "$@"; }

# The package's files, seen inside as the host has them.
differ=
for f in /lib/systemd/system/mandos.service /etc/default/mandos /etc/mandos/mandos.conf \
	/etc/mandos/clients.conf /etc/dbus-1/system.d/mandos.conf /usr/lib/sysusers.d/mandos.conf \
	/usr/lib/tmpfiles.d/mandos.conf /usr/sbin/mandos; do
	if sd_run cat "$f" 2>/dev/null | cmp -s - "$f"; then true; else differ+=" $f"; fi
done
check "inside, the package's unit, /etc/mandos, /etc/default/mandos, D-Bus policy, sysusers.d and tmpfiles.d are the host's${differ:+ (differ:$differ)}" \
	test -z "$differ"
DPKG_V_HOST=$(sd_run dpkg -V mandos 2>&1)
check "dpkg -V mandos runs inside and says what it says on the host ('$DPKG_V_HOST')" \
	test "$DPKG_V_HOST" = "$(dpkg -V mandos 2>&1)"
unit=$(sd_prop mandos.service FragmentPath)
check "the manager loads the reference's own unit ($unit)" test "$unit" = /lib/systemd/system/mandos.service

# ------------------------------------------------- 1. the reference, running

# Appended to the package's clients.conf and mandos.conf, as an admin would.
{
	echo
	client_section alpha 'checker = true' 'timeout = PT2H' 'interval = PT1H'
	echo
	client_section bravo 'checker = true' 'extended_timeout = PT3H' 'interval = PT1H'
} | sd_run sh -c 'cat >>/etc/mandos/clients.conf' || bail "cannot add the test clients"
printf '\n# added by %s\nport = %s\n' "$TEST_NAME" "$PORT" |
	sd_run sh -c 'cat >>/etc/mandos/mandos.conf' || bail "cannot set the port"
DPKG_V_ADMIN=$(sd_run dpkg -V mandos 2>&1)
diag "dpkg -V mandos after the admin's edits: $(echo "$DPKG_V_ADMIN" | tr '\n' ';')"

# ns_listening PORT: something listens on TCP PORT in the manager's network.
ns_listening() {
	local hex
	hex=$(printf '%04X' "$1")
	# shellcheck disable=SC2016 # awk's fields
	sd_run awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6
}

# ctl_has NAME: mandos-ctl (on the namespace's system bus) lists NAME.
ctl_has() { ctl 2>/dev/null | awk -v n="$1" '$1 == n { f = 1 } END { exit !f }'; }

# props FILE: mandos-ctl --dump-json (the properties "mandos-ctl -v" shows)
# without the time fields, one "client.key = value" a line.
TIME_FIELDS="Created LastEnabled LastCheckedOK LastApprovalRequest Expires"
props() {
	ctl --dump-json >"$1.json" 2>"$1.err" || return 1
	"$PY" -c '
import json, sys
skip = set(sys.argv[2].split())
for c, ps in sorted(json.load(open(sys.argv[1])).items()):
    for k, v in sorted(ps.items()):
        if k not in skip:
            print(f"{c}.{k} = {json.dumps(v)}")' "$1.json" "$TIME_FIELDS" >"$1"
}

# As at a host's boot: avahi-daemon, then the reference (After=, Requisite=).
sd_run systemctl start avahi-daemon.service || bail "avahi-daemon does not start in the namespace"
sd_run systemctl start mandos.service || bail "the reference's unit does not start: $(sd_run systemctl status mandos.service 2>&1 | tail -n 5)"
if wait_until 20 ns_listening "$PORT" && wait_until 10 ctl_has bravo; then
	ok "the reference runs from its own unit, listens on port $PORT and has alpha and bravo on the bus"
else
	not_ok "the reference runs from its own unit, listens on port $PORT and has alpha and bravo on the bus"
	sd_run journalctl --no-pager -u mandos.service | tail -n 20 | sed 's/^/#   /'
	bail "the reference did not start"
fi
REF_PID=$(sd_main_pid mandos.service)
check "...it is Debian's Python server ($(sd_args "$REF_PID"))" \
	bash -c "[[ '$(sd_args "$REF_PID")' == *python3*/usr/sbin/mandos* ]]"

check "the real mandos-ctl -d disables bravo" ctl -d bravo
# A new secret for alpha, encrypted to alpha's key as mandos-keygen does it.
DBUS_SECRET='the secret set over D-Bus for alpha'
keygen_secret alpha "$DBUS_SECRET" "$SCRATCH/newsecret.bin"
check "the real mandos-ctl --secret sets alpha's secret" ctl --secret "$SCRATCH/newsecret.bin" alpha

# expect_dbus_secret DESC: alpha is served the secret set over D-Bus on port N.
expect_dbus_secret() {
	local got
	got=$(fetch alpha "$ADDR" 15)
	if [ "$got" = "$DBUS_SECRET" ]; then
		ok "$1"
	else
		not_ok "$1 (got ${#got} bytes: '${got:0:80}')"
	fi
}
expect_dbus_secret "the reference serves alpha the secret set over D-Bus, on port $PORT"
expect_nothing "...and bravo, disabled, nothing" bravo "$ADDR" 3

ctl -v >"$SCRATCH/ref-v.txt" 2>&1
diag "mandos-ctl -v, the reference:"
sed 's/^/#   /' "$SCRATCH/ref-v.txt"
props "$SCRATCH/ref-props" || bail "mandos-ctl --dump-json failed: $(cat "$SCRATCH/ref-props.err")"
check "...alpha enabled, bravo disabled" \
	bash -c "grep -qx 'alpha.Enabled = true' '$SCRATCH/ref-props' && grep -qx 'bravo.Enabled = false' '$SCRATCH/ref-props'"

sd_run systemctl stop mandos.service
check "systemctl stop mandos: the reference wrote /var/lib/mandos/clients.pickle" \
	sd_run test -s /var/lib/mandos/clients.pickle
sd_run cp /var/lib/mandos/clients.pickle "$SCRATCH/clients.pickle.ref"


# ------------------------------------------- 2. the README's replacement

# run_block NAME MARKER: run the README's fenced block after MARKER,
# verbatim, as root in the namespace, with a root shell's environment, from
# a copy of the source tree (MANDOS_SOURCE, default this one: files git
# tracks or would add). The namespace's root has no sudo: a "sudo" there
# runs its command. The block's output goes to $SCRATCH/NAME.log.
run_block() {
	local name=$1 marker=$2
	readme_block "$marker" >"$SCRATCH/$name.sh"
	if [ ! -s "$SCRATCH/$name.sh" ]; then
		not_ok "README.md has a fenced block of commands after '$marker'"
		return 1
	fi
	diag "README.md, after '$marker':"
	sed 's/^/#   $ /' "$SCRATCH/$name.sh"
	# shellcheck disable=SC2016 # expanded by the inner shell
	sd_run env -i PATH="$SCRATCH/shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 \
		bash -e -x -c 'cd "$1" && . "$2"' sh "$SCRATCH/src" "$SCRATCH/$name.sh" \
		</dev/null >"$SCRATCH/$name.log" 2>&1
	local rc=$?
	if [ "$rc" = 0 ]; then
		ok "the README's $name run verbatim in the namespace (exit 0)"
	else
		not_ok "the README's $name run verbatim in the namespace (exit $rc)"
		tail -n 25 "$SCRATCH/$name.log" | sed 's/^/#   | /'
	fi
	return "$rc"
}

MANDOS_SOURCE=${MANDOS_SOURCE:-$SOURCE_DIR}
mkdir -p "$SCRATCH/src" "$SCRATCH/shim"
(cd "$MANDOS_SOURCE" && git ls-files -z -c -o --exclude-standard | tar --null -T - -cf -) |
	tar -xf - -C "$SCRATCH/src" || bail "cannot copy the source tree $MANDOS_SOURCE"
printf '#!/bin/sh\nexec "$@"\n' >"$SCRATCH/shim/sudo"
chmod +x "$SCRATCH/shim/sudo"

if ! run_block replace-steps '<!-- replace-steps -->'; then
	sd_dump_journal "$SCRATCH/namespace-journal.log"
	finish
fi

# ------------------------------------------------------ 3. after the switch

sd_run systemctl --no-pager list-unit-files 'mandos*' 2>&1 | sed 's/^/#   /'
if wait_until 20 ns_listening "$PORT"; then
	ok "after the switch, something listens on port $PORT (mandos.conf's port)"
else
	not_ok "after the switch, something listens on port $PORT (mandos.conf's port)"
	sd_run ss -ltnp 2>&1 | sed 's/^/#   /'
fi
expect_dbus_secret "after the switch, alpha is served the secret set over D-Bus, on port $PORT (the real mandos-client)"
expect_nothing "...and bravo, disabled with mandos-ctl -d, still gets nothing" bravo "$ADDR" 3
# Nor anywhere else mandos.socket listens.
for p in $(sd_prop mandos.socket Listen | sed -n 's/.*:\([0-9][0-9]*\) (Stream).*/\1/p' | sort -u); do
	[ "$p" = "$PORT" ] && continue
	expect_nothing "...nor on port $p, where mandos.socket listens too" bravo "[::1]:$p" 3
done
OUR_PID=$(sd_main_pid mandos.service)
OUR_UNIT=$(sd_prop mandos.service FragmentPath)
check "...from our server ($(sd_args "${OUR_PID:-0}"), unit $OUR_UNIT), not the reference" \
	bash -c "[ '${OUR_PID:-0}' != 0 ] && [[ '$(sd_args "${OUR_PID:-0}")' != *python* ]] && [ '$OUR_UNIT' != /lib/systemd/system/mandos.service ]"

ctl -v >"$SCRATCH/our-v.txt" 2>&1
diag "mandos-ctl -v, ours:"
sed 's/^/#   /' "$SCRATCH/our-v.txt"
if props "$SCRATCH/our-props" && cmp -s "$SCRATCH/ref-props" "$SCRATCH/our-props"; then
	ok "every property mandos-ctl -v shows is the reference's (time fields aside: $TIME_FIELDS)"
else
	not_ok "every property mandos-ctl -v shows is the reference's (time fields aside: $TIME_FIELDS)"
	sed 's/^/#   /' "$SCRATCH/our-props.err" 2>/dev/null
	diff "$SCRATCH/ref-props" "$SCRATCH/our-props" | sed 's/^/#   /'
fi

kept=
for f in $(sd_run sh -c 'ls -d /var/lib/mandos/clients.pickle* 2>/dev/null'); do
	sd_run cat "$f" | cmp -s - "$SCRATCH/clients.pickle.ref" && kept=$f
done
check "...the reference's clients.pickle is still there, byte for byte (${kept:-not found})" test -n "$kept"

# mandos-monitor, in the namespace, read from a tmux screen.
TMUX_SOCKET="$SCRATCH/tmux.sock"
tm() { tmux -S "$TMUX_SOCKET" "$@"; }
screen() { tm capture-pane -p -t monitor 2>/dev/null; }
on_screen() {
	local pat=$2
	wait_until 10 eval 'screen | grep -qE -- "$pat"' && { ok "$1"; return 0; }
	not_ok "$1 (no '$2' on the screen)"
	screen | sed 's/^/#   | /'
}
tm -f /dev/null new-session -d -s monitor -x 150 -y 40 \
	"nsenter -t $SD_PID1 -a $MANDOS_MONITOR 2>'$SCRATCH/monitor.err'; sleep 600" ||
	bail "tmux did not start"
remember_pid "$(tm display-message -p '#{pid}')"
on_screen "the real mandos-monitor starts against our server" "Mandos Monitor version $REF_VERSION"
on_screen "...shows bravo disabled" "bravo: DISABLED"
on_screen "...and alpha enabled" "alpha: (enabled|A checker)"
check "...and says nothing about a missing server" bash -c "! tmux -S '$TMUX_SOCKET' capture-pane -p -t monitor |
	grep -q -e 'No Mandos server running' -e 'Server has no clients'"
tm send-keys -t monitor q
sleep 0.5
check "...and quits without a traceback" bash -c "! grep -q Traceback '$SCRATCH/monitor.err'"
tm kill-server 2>/dev/null

# ----------------------------------------------- 4. the package's files

DPKG_V_OURS=$(sd_run dpkg -V mandos 2>&1)
DIVERSIONS=$(sd_run dpkg-divert --list 2>/dev/null | grep -F mandos)
diag "dpkg -V mandos after the switch: $(echo "$DPKG_V_OURS" | tr '\n' ';')"
diag "diversions: ${DIVERSIONS:-none}"
if [ "$DPKG_V_OURS" = "$DPKG_V_ADMIN" ]; then
	ok "dpkg -V mandos: no file of the package was changed by the switch${DIVERSIONS:+ (diverted: $DIVERSIONS)}"
else
	not_ok "dpkg -V mandos: no file of the package was changed by the switch" \
		"(new: $(comm -13 <(echo "$DPKG_V_ADMIN") <(echo "$DPKG_V_OURS") | tr '\n' ';'))"
fi

# ------------------------------------------------------- 5. going back

# The way back: the block after its own marker, or else the first after
# "**Going back**".
GO_BACK_MARKER='<!-- replace-back-steps -->'
grep -qF -- "$GO_BACK_MARKER" "$README" || GO_BACK_MARKER='**Going back**'
if run_block go-back-steps "$GO_BACK_MARKER"; then
	REF_UNIT=$(sd_prop mandos.service FragmentPath)
	check "after going back, mandos.service is the reference's own unit ($REF_UNIT)" \
		test "$REF_UNIT" = /lib/systemd/system/mandos.service
	sd_run systemctl is-active -q mandos.service || sd_run systemctl start mandos.service
	if wait_until 20 ns_listening "$PORT" && wait_until 10 ctl_has alpha; then
		ok "...it runs and listens on port $PORT"
	else
		not_ok "...it runs and listens on port $PORT"
		sd_run journalctl --no-pager -u mandos.service | tail -n 20 | sed 's/^/#   /'
	fi
	REF_PID=$(sd_main_pid mandos.service)
	check "...it is Debian's Python server again ($(sd_args "${REF_PID:-0}"))" \
		bash -c "[[ '$(sd_args "${REF_PID:-0}")' == *python3*/usr/sbin/mandos* ]]"
	got=$(fetch alpha "$ADDR" 15)
	if [ "$got" = "$DBUS_SECRET" ]; then
		ok "...and serves alpha (the secret set over D-Bus: the reference read its pickle)"
	elif [ "$got" = "$(secret_of alpha)" ]; then
		ok "...and serves alpha (its clients.conf secret: the reference started without its pickle)"
	else
		not_ok "...and serves alpha (got ${#got} bytes)"
	fi
	expect_nothing "...and bravo, disabled before the switch, still gets nothing from it" bravo "$ADDR" 3
	DPKG_V_BACK=$(sd_run dpkg -V mandos 2>&1)
	DIVERSIONS=$(sd_run dpkg-divert --list 2>/dev/null | grep -F mandos)
	check "...dpkg -V mandos is as before the switch ('$(echo "$DPKG_V_BACK" | tr '\n' ';')'), no diversion left ('$DIVERSIONS')" \
		test "$DPKG_V_BACK" = "$DPKG_V_ADMIN" -a -z "$DIVERSIONS"
fi

sd_dump_journal "$SCRATCH/namespace-journal.log"
sd_halt
host_view >"$SCRATCH/host-after.txt"
if cmp -s "$SCRATCH/host-before.txt" "$SCRATCH/host-after.txt"; then
	ok "the host's files are as they were (dpkg -V, diversions, /etc/mandos, /var/lib/mandos, units, /usr/local)"
else
	not_ok "the host's files are as they were"
	diff "$SCRATCH/host-before.txt" "$SCRATCH/host-after.txt" | sed 's/^/#   /'
fi
finish
