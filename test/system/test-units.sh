#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317,SC2015 # functions called by traps and wait_until; A && B || bail
#
# The shipped units under a real systemd manager (README.md, Installing).
# The build is installed with "meson install --destdir"; the namespace's
# manager (lib.sh) gets the two units exactly as meson installed them, and
# sees the installed tree over its /usr (so that their ExecStart= path, the
# D-Bus policy, sysusers.d and tmpfiles.d exist inside). Configuration
# lives in the namespace's /etc/mandos (root:_mandos, 0640), with the
# default mandos.conf. Real mandos-client fetches run in the manager's
# network namespace, and a test host for the default checker (fping) lives
# in a network namespace of its own, joined to the manager's by a veth pair.
#
#  1. install: the units are meson's, their ExecStart= exists inside, the
#     D-Bus policy lands where the system bus reads it; "systemctl start
#     mandos.socket" starts no server; the first real mandos-client
#     connection starts mandos.service (as _mandos) and gets its secret,
#     over IPv6 and IPv4 (dual stack); "systemctl status" says
#     "TriggeredBy: mandos.socket".
#  2. "busctl tree" lists the clients, "busctl introspect" shows the
#     reference's client API; "journalctl -u mandos -o json" has a
#     secret-sent MESSAGE_ID entry with MANDOS_CLIENT=, MANDOS_KEY_ID= and
#     MANDOS_ADDRESS=; and (at the very end) no secret, neither a password
#     nor a line of the encrypted secret, is anywhere in the journal.
#  3. fping, the default checker, finds the test host alive under the
#     hardened unit (client enabled, "Checker for gw succeeded"); while the
#     host's link is down the checker runs as _mandos, in the service's
#     cgroup, no scope, with CAP_NET_RAW, and fails; alive again when the
#     link is back; dead once the host's namespace is deleted. The server
#     says it runs its checkers as plain process groups.
#  4. "systemctl restart mandos.service" under 20 connections a second
#     (and a real client fetching in a loop): every connection is handled,
#     none refused, reset or lost; the listening socket is the same one;
#     a client disabled by expiry stays disabled, enabled ones stay enabled.
#  5. "systemctl reload mandos" (same main PID) applies an edited
#     clients.conf: a new client then gets its secret.
#  6. "systemd-analyze verify" of both units is clean; "systemd-analyze
#     security mandos.service" rates the exposure at most 2.5.

# shellcheck source=../integration/lib.sh
. "${TEST_DIR:?TEST_DIR (test/integration) is not set}/lib.sh"
# shellcheck source=lib.sh
. "${SYSTEM_TEST_DIR:-$(cd "$(dirname "$0")" && pwd)}/lib.sh"

sd_require
require_common
require_prog meson ip busctl systemd-analyze cmp base64 sha256sum
[ -x /usr/bin/fping ] || skip "needs fping, the default checker (Debian package fping)"
getent passwd _mandos >/dev/null || skip "needs the user _mandos (the Debian package mandos makes it)"

PORT=9876                       # mandos.socket's ListenStream=
EXPOSURE_MAX=2.5
HOST_ADDR=10.98.76.2            # the checker's test host
MGR_ADDR=10.98.76.1             # the manager's end of the veth pair
HOSTNS="mandos-test-host-$$"
HOSTNS_MADE=
LOAD_RATE=20                    # connections a second during the restart
LOAD_SECONDS=8
RESTART_AT=3                    # seconds into the load

# Message IDs (src/log.h).
MESSAGE_ID_SECRET_SENT=a5d5a21de6f8430cb3dbbd8a6540d21f
MESSAGE_ID_RELOADED=6e0c2d4b8a9f41c3b5d7e9f1a3c5e7b9

_units_cleanup() {
	local rc=$?
	[ -n "$HOSTNS_MADE" ] && ip netns del "$HOSTNS" 2>/dev/null
	(exit "$rc")
	_sd_cleanup
}
trap _units_cleanup EXIT

# ------------------------------------------------------------- install

sd_meson_install
EXEC_START=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$DESTDIR$SERVICE_PATH")
diag "meson installed: $(cd "$DESTDIR" && find . -type f | sed 's/^\.//' | sort | tr '\n' ' ')"

check "the installed mandos.service runs the installed binary ($EXEC_START)" \
	test -n "$EXEC_START" -a -x "$DESTDIR$EXEC_START"
if [ -x "$DESTDIR$EXEC_START" ] && cmp -s "$DESTDIR$EXEC_START" "$MANDOS"; then
	ok "the installed binary is the one built ($MANDOS)"
else
	not_ok "the installed binary $EXEC_START is the one built ($MANDOS)"
fi
case $POLICY_PATH in
/usr/share/dbus-1/system.d/* | /etc/dbus-1/system.d/*)
	ok "the D-Bus policy is installed where the system bus reads it ($POLICY_PATH)" ;;
*)
	not_ok "the D-Bus policy is installed where the system bus reads it" \
		"(/usr/share/dbus-1/system.d or /etc/dbus-1/system.d; meson put it in '${POLICY_PATH:-nowhere}')" ;;
esac

# ------------------------------------------------------------ the keys

ensure_keys alpha
ensure_keys bravo
ensure_keys charlie

# alpha, bravo (and charlie, added by the reload) fetch their secrets; their
# checker always succeeds. gw's is the default one (fping) against the test
# host; lapsed's always fails, so lapsed is disabled by expiry one interval
# after the server started (docs/REFERENCE-BEHAVIOUR.md, Checker scheduling).
CONF="$SCRATCH/etc-mandos"
mkdir -p "$CONF"
# The default mandos.conf (debuglevel unset).
printf '[DEFAULT]\n' >"$CONF/mandos.conf"
{
	client_section alpha 'checker = true'
	echo
	client_section bravo 'checker = true'
	echo
	sd_section gw "host=$HOST_ADDR" interval=1s timeout=10m
	echo
	sd_section lapsed host=lapsed.invalid checker=false interval=1s timeout=10m
	echo
} >"$CONF/clients.conf"
{
	cat "$CONF/clients.conf"
	client_section charlie 'checker = true'
	echo
} >"$CONF/clients.conf.new"
# sleeper's checker outlives nothing: it runs until it is killed.
{
	cat "$CONF/clients.conf.new"
	sd_section sleeper host=sleeper.invalid 'checker=sleep 300; true' interval=1s timeout=10m
	echo
} >"$CONF/clients.conf.kill"

# ------------------------------------------------------------- manager

sd_init
cp "$DESTDIR$SERVICE_PATH" "$DESTDIR$SOCKET_PATH" "$SD_DIR/units/"
sd_boot 20

sd_client_in_namespace

# The namespace's own /tmp (PrivateTmp= makes directories there), and the
# installed tree over its /usr.
sd_private_tmp "$SCRATCH" "$BUILD_DIR" "$KEY_CACHE" || bail "cannot give the namespace a /tmp of its own"
[ -d "$DESTDIR/usr" ] || bail "meson installed nothing under /usr"
sd_overlay /usr "$DESTDIR/usr" || bail "cannot lay the installed tree over the namespace's /usr"

out=$(sd_run "$EXEC_START" --version 2>&1)
check "inside the namespace, ExecStart=$EXEC_START exists and runs ('$out')" test -n "$out"
if cmp -s "$SD_DIR/units/mandos.service" "$DESTDIR$SERVICE_PATH" &&
	cmp -s "$SD_DIR/units/mandos.socket" "$DESTDIR$SOCKET_PATH"; then
	ok "the manager's mandos.service and mandos.socket are the ones meson installed ($SERVICE_PATH, $SOCKET_PATH)"
else
	not_ok "the manager's mandos.service and mandos.socket are the ones meson installed"
fi

# The D-Bus policy: where meson put it if the bus reads that place (seen
# through the overlay), else in the bus's local directory, so that the
# rest can run; then the bus reloads its configuration.
if [ -n "$POLICY_PATH" ]; then
	case $POLICY_PATH in
	/usr/share/dbus-1/system.d/* | /etc/dbus-1/system.d/*)
		[[ $POLICY_PATH == /etc/* ]] && sd_run install -D -m 0644 "$DESTDIR$POLICY_PATH" "$POLICY_PATH" ;;
	*)
		diag "using the policy from /etc/dbus-1/system.d instead"
		sd_run install -D -m 0644 "$DESTDIR$POLICY_PATH" /etc/dbus-1/system.d/se.recompile.Mandos.conf ;;
	esac
	sd_run busctl --system call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig ||
		bail "the namespace's system bus did not reload its configuration"
fi

# sysusers.d and tmpfiles.d as installed (inside: /usr is the installed tree).
# Both are where systemd looks (--cat-config lists what a boot applies);
# then only they are applied (not the host's others).
for tool in systemd-sysusers systemd-tmpfiles; do
	path=$SYSUSERS_PATH
	[ "$tool" = systemd-tmpfiles ] && path=$TMPFILES_PATH
	if [ -n "$path" ] && sd_run "$tool" --cat-config --no-pager 2>/dev/null | grep -qx "# $path"; then
		ok "$tool reads $path at boot ($tool --cat-config)"
	else
		not_ok "$tool reads the installed ${path:-(not installed)} at boot ($tool --cat-config)"
	fi
done
if [ -n "$SYSUSERS_PATH" ] && sd_run systemd-sysusers "$SYSUSERS_PATH" &&
	sd_run getent passwd _mandos >/dev/null; then
	ok "systemd-sysusers $SYSUSERS_PATH: the user _mandos exists"
else
	not_ok "systemd-sysusers ${SYSUSERS_PATH:-(not installed)} makes the user _mandos"
fi
if [ -n "$TMPFILES_PATH" ] && sd_run systemd-tmpfiles --create "$TMPFILES_PATH" &&
	[ "$(sd_run stat -c '%a %U %G' /var/lib/mandos)" = "700 _mandos _mandos" ]; then
	ok "systemd-tmpfiles --create $TMPFILES_PATH: /var/lib/mandos is 0700 _mandos:_mandos"
else
	not_ok "systemd-tmpfiles --create ${TMPFILES_PATH:-(not installed)} makes /var/lib/mandos 0700 _mandos:_mandos" \
		"(it is $(sd_run stat -c '%a %U %G' /var/lib/mandos 2>&1))"
fi
MANDOS_UID=$(sd_run id -u _mandos)

# The journal catalog as installed: journalctl -x explains every MESSAGE_ID.
missing=''
if sd_run journalctl --update-catalog >"$SCRATCH/update-catalog.log" 2>&1; then
	catalog=$(sd_run journalctl --list-catalog 2>/dev/null)
	for id in $(sed -n 's/^#define MESSAGE_ID_[A-Z_]* *"\([0-9a-f]\{32\}\)".*/\1/p' "$SYSTEM_TEST_DIR/../../src/log.h"); do
		grep -q "^$id " <<<"$catalog" || missing+=" $id"
	done
	if [ -z "$missing" ]; then
		ok "journalctl --update-catalog: the installed catalog explains every MESSAGE_ID of src/log.h"
	else
		not_ok "the installed catalog explains every MESSAGE_ID of src/log.h (missing:$missing)"
	fi
else
	not_ok "journalctl --update-catalog ($(head -c 300 "$SCRATCH/update-catalog.log"))"
fi

# The configuration: Debian's layout, readable by root only (the server's
# root launcher reads it for the server).
install_conf() {
	sd_run install -D -o root -g root -m 0600 "$CONF/$1" "/etc/mandos/$2"
}
install_conf mandos.conf mandos.conf && install_conf clients.conf clients.conf ||
	bail "cannot write the namespace's /etc/mandos"
# Whatever the host has there must not change the unit's command line.
sd_run /bin/sh -c 'echo "DAEMON_ARGS=\"\"" >/etc/default/mandos'

# The test host: a network namespace with HOST_ADDR, joined to the
# manager's by a veth pair.
ip netns add "$HOSTNS" || bail "ip netns add $HOSTNS failed"
HOSTNS_MADE=1
ip -n "$HOSTNS" link set lo up &&
	ip -n "$HOSTNS" link add vhost type veth peer name vmandos netns "$SD_PID1" &&
	ip -n "$HOSTNS" addr add "$HOST_ADDR/24" dev vhost &&
	ip -n "$HOSTNS" link set vhost up &&
	nsenter -t "$SD_PID1" -n ip addr add "$MGR_ADDR/24" dev vmandos &&
	nsenter -t "$SD_PID1" -n ip link set vmandos up ||
	bail "cannot join the test host's namespace to the manager's"
nsenter -t "$SD_PID1" -n fping -q -r 10 -t 200 "$HOST_ADDR" ||
	bail "the test host $HOST_ADDR does not answer fping from the manager's namespace"

# ---------------------------------------------------------------- helpers

journal() { sd_run journalctl --no-pager -u mandos.service "$@" 2>/dev/null; }
jcount() { journal -o cat | grep -cF -- "$1"; }
# jhas PATTERN [MIN]: the journal of mandos.service has at least MIN
# (default 1) messages containing PATTERN.
jhas() { [ "$(jcount "$1")" -ge "${2:-1}" ]; }
# jwait SECONDS PATTERN [MIN]
jwait() { local t=$1; shift; wait_until "$t" jhas "$@"; }

# prop CLIENT PROPERTY: a client's D-Bus property, as busctl prints it
# ("b true").
prop() {
	sd_run busctl --system get-property se.recompile.Mandos "/clients/$1" \
		se.recompile.Mandos.Client "$2" 2>&1
}

service_state() { sd_prop mandos.service ActiveState; }
is_active() { [ "$(service_state)" = active ]; }

# the listening socket's inode in the namespace (TCP port PORT).
listen_inode() {
	local hex
	hex=$(printf '%04X' "$PORT")
	sd_run cat /proc/net/tcp6 /proc/net/tcp 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' | sort -u | tr '\n' ' '
}

# ---------------------------------------------- 1. socket activation

part_activation() {
	local out uid t0 main eff launcher inode

	if sd_run systemctl start mandos.socket; then
		ok "systemctl start mandos.socket"
	else
		not_ok "systemctl start mandos.socket ($(sd_run systemctl status --no-pager mandos.socket 2>&1 | tail -n 5 | tr '\n' '|'))"
		return 1
	fi
	out=$(service_state)
	check "mandos.service is not started by its socket alone (it is $out)" test "$out" = inactive

	t0=$(now_ms)
	expect_secret "the first real mandos-client connection ([::1]:$PORT) starts mandos.service and gets its secret" \
		alpha "[::1]:$PORT" 30
	diag "first fetch, server start included: $(($(now_ms) - t0)) ms"
	out=$(sd_run systemctl status --no-pager mandos.service 2>&1)
	if is_active && grep -qE '^ *TriggeredBy: .*mandos\.socket' <<<"$out"; then
		ok "systemctl status mandos.service: active, $(grep -E 'TriggeredBy:' <<<"$out" | sed 's/^ *//')"
	else
		not_ok "systemctl status mandos.service: active, 'TriggeredBy: mandos.socket' (got: $(head -n 8 <<<"$out" | tr '\n' '|'))"
	fi
	if ! is_active; then
		diag "mandos.service is $(service_state) ($(sd_prop mandos.service Result)); its journal:"
		journal -o short-precise | tail -n 20 | sed 's/^/#   /'
		return 1
	fi
	main=$(sd_main_pid mandos.service)
	uid=$(sd_uid_of "$main")
	check "the server runs as _mandos (uid $uid)" test "$uid" = "$MANDOS_UID"
	# shellcheck disable=SC2016 # awk's $2
	eff=$(sd_run awk '/^CapEff:/ { print $2 }' "/proc/$main/status" 2>/dev/null)
	check "the server, which holds the listening socket, has an empty effective capability set (CapEff $eff)" \
		test -n "$eff" -a "$((16#${eff:-1}))" = 0
	launcher=$(sd_children "$main" | while read -r c; do
		[ "$(sd_uid_of "$c")" = 0 ] && echo "$c"; done | head -n 1)
	inode=$(listen_inode)
	inode=${inode%% *}
	if [ -n "$launcher" ] && [ -n "$inode" ] &&
		! sd_run ls -l "/proc/$launcher/fd" 2>/dev/null | grep -q "socket:\[$inode\]"; then
		ok "the root launcher (PID $launcher, a child of the server) does not hold the listening socket"
	else
		not_ok "a root launcher (child of the server: '${launcher:-none}') without the listening socket (inode $inode)"
	fi
	expect_secret "over IPv4 too (127.0.0.1:$PORT, dual stack)" bravo "127.0.0.1:$PORT" 15
	diag "status: $(sd_prop mandos.service StatusText)"
	return 0
}

# ------------------------------------------------------ 2. bus, journal

part_bus_journal() {
	local out name missing='' ref="$TEST_DIR/reference/introspect-client.xml"

	out=$(sd_run busctl --system --list tree se.recompile.Mandos 2>&1)
	for name in alpha bravo gw lapsed; do
		grep -qx "/clients/$name" <<<"$out" || missing+=" /clients/$name"
	done
	if [ -z "$missing" ]; then
		ok "busctl tree se.recompile.Mandos: $(tr '\n' ' ' <<<"$out")"
	else
		not_ok "busctl tree se.recompile.Mandos lists every client (missing:$missing; got: $(tr '\n' ' ' <<<"$out"))"
	fi

	out=$(sd_run busctl --system introspect se.recompile.Mandos /clients/alpha 2>&1)
	missing=''
	for name in se.recompile.Mandos.Client .Approve .CheckedOK .Enable .Disable .StartChecker \
		.StopChecker .Enabled .KeyID .Fingerprint .Host .Interval .Timeout .Secret .GotSecret .Rejected; do
		awk -v n="$name" '$1 == n { f = 1 } END { exit !f }' <<<"$out" || missing+=" $name"
	done
	if [ -z "$missing" ]; then
		ok "busctl introspect se.recompile.Mandos /clients/alpha shows the client API ($(grep -c '^\.' <<<"$out") members)"
	else
		not_ok "busctl introspect se.recompile.Mandos /clients/alpha shows the client API (missing:$missing; got: $(head -n 5 <<<"$out" | tr '\n' '|'))"
	fi
	sd_run busctl --system --xml-interface introspect se.recompile.Mandos /clients/alpha >"$SCRATCH/introspect-alpha.xml" 2>&1
	if out=$("$PY" "$TEST_DIR/dbus-check.py" introspect "$ref" "$SCRATCH/introspect-alpha.xml" 2>&1); then
		ok "... and has every interface, member and property of the reference's client"
	else
		not_ok "... and has every interface, member and property of the reference's client: $(head -n 5 <<<"$out" | tr '\n' '|')"
	fi

	# The secret-sent entries, as JSON.
	journal -o json >"$SCRATCH/journal-mandos.json"
	out=$("$PY" - "$SCRATCH/journal-mandos.json" "$MESSAGE_ID_SECRET_SENT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("MESSAGE_ID") == sys.argv[2]:
        print(" ".join("%s=%s" % (k, e.get(k, "")) for k in
              ("MANDOS_CLIENT", "MANDOS_KEY_ID", "MANDOS_ADDRESS", "PRIORITY", "_SYSTEMD_UNIT", "_UID")),
              "MESSAGE=" + str(e.get("MESSAGE")))
PY
)
	name=$(grep -m1 '^MANDOS_CLIENT=alpha ' <<<"$out")
	if [ -n "$name" ] && grep -qi "MANDOS_KEY_ID=$(key_id_of alpha) " <<<"$name" &&
		grep -q 'MANDOS_ADDRESS=[^ ]' <<<"$name" && grep -q "_UID=$MANDOS_UID " <<<"$name"; then
		ok "journalctl -u mandos -o json: MESSAGE_ID=$MESSAGE_ID_SECRET_SENT $name"
	else
		not_ok "journalctl -u mandos -o json has MESSAGE_ID=$MESSAGE_ID_SECRET_SENT with MANDOS_CLIENT=alpha," \
			"its MANDOS_KEY_ID, a MANDOS_ADDRESS, from _UID=$MANDOS_UID (secret-sent entries: ${out:-none};" \
			"$(wc -l <"$SCRATCH/journal-mandos.json") entries in all)"
	fi
}

# status_says TEXT: the unit's StatusText (the server's STATUS=) begins with TEXT.
status_says() { [[ $(sd_prop mandos.service StatusText) == "$1"* ]]; }

# status_check WHEN TEXT: StatusText begins with TEXT within 10 s.
status_check() {
	wait_until 10 status_says "$2"
	check "$1: StatusText \"$(sd_prop mandos.service StatusText)\"" status_says "$2"
}

# STATUS= counts the enabled clients, and follows a change made on the bus.
part_status() {
	wait_until 10 eval '[ "$(prop lapsed Enabled)" = "b false" ]'
	check "lapsed was disabled by expiry ($(prop lapsed Enabled))" test "$(prop lapsed Enabled)" = "b false"
	status_check "alpha, bravo and gw enabled" "3 of 4 clients enabled; "
	sd_run busctl --system call se.recompile.Mandos /clients/bravo se.recompile.Mandos.Client Disable
	status_check "after bravo's Disable on the bus" "2 of 4 clients enabled; "
	sd_run busctl --system call se.recompile.Mandos /clients/bravo se.recompile.Mandos.Client Enable
	status_check "after its Enable" "3 of 4 clients enabled; "
}

# ----------------------------------------------------- 3. fping checker

fping_pid() {
	local p
	p=$(sd_pids_with_args "fping -q -- $HOST_ADDR" | head -n 1)
	[ -n "$p" ] && printf '%s' "$p"
}

# gw's last checker, by its D-Bus property LastCheckerStatus (n: int16).
gw_ok() { [ "$(prop gw LastCheckerStatus)" = "n 0" ]; }
gw_failing() { [[ $(prop gw LastCheckerStatus) =~ ^n\ -?[1-9][0-9]*$ ]]; }

# gw_checker_was N WHEN OUTCOME: after the N checkers of gw that ended so
# with OUTCOME ("failed", "succeeded"), the next one logs so within 10 s,
# and gw's LastCheckerStatus on the bus follows (gw_failing, gw_ok).
gw_checker_was() {
	local n=$1 when=$2 outcome=$3 status=gw_ok out
	[ "$outcome" = failed ] && status=gw_failing
	if jwait 10 "Checker for gw $outcome" $((n + 1)); then
		ok "$when: 'Checker for gw $outcome'"
	else
		not_ok "$when: 'Checker for gw $outcome' within 10 s"
	fi
	wait_until 5 "$status"
	out=$(prop gw LastCheckerStatus)
	check "... and gw's LastCheckerStatus on the bus says so ($out)" "$status"
}

# cap_has NSPID BIT: the process's effective capability set has BIT.
cap_has() {
	local eff
	# shellcheck disable=SC2016 # awk's $2
	eff=$(sd_run awk '/^CapEff:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
	[ -n "$eff" ] && (((16#$eff >> $2) & 1))
}

part_checker() {
	local n pid cg uid parent gparent main out scope scg

	main=$(sd_main_pid mandos.service)
	cg=$(sd_prop mandos.service ControlGroup)
	if cap_has "$main" 13; then
		not_ok "the server itself holds no CAP_NET_RAW in its effective set ($(sd_run grep ^Cap "/proc/$main/status" 2>&1 | tr '\n' ' '))"
	else
		ok "the server itself holds no CAP_NET_RAW in its effective set (its checkers get it, below)"
	fi
	if jwait 10 "Checker for gw succeeded"; then
		ok "fping finds the test host alive under the hardened unit: 'Checker for gw succeeded'"
	else
		not_ok "fping finds the test host alive under the hardened unit: 'Checker for gw succeeded' within 10 s" \
			"(the journal says: $(journal -o cat | grep -F 'gw' | tail -n 3 | tr '\n' '|'))"
	fi
	out=$(prop gw Enabled)
	check "gw stays enabled (Enabled: $out)" test "$out" = "b true"
	wait_until 3 gw_ok
	out=$(prop gw LastCheckerStatus)
	check "gw's LastCheckerStatus on the bus is 0 ($out)" test "$out" = "n 0"
	out=$(journal -o cat | grep -F 'plain process group' | head -n 1)
	check "the server never says its checkers run as plain process groups (${out:-nothing})" test -z "$out"

	# The host's link goes down: fping waits for answers, long enough to be seen.
	n=$(jcount "Checker for gw failed")
	ip -n "$HOSTNS" link set vhost down
	pid=$(wait_until 6 fping_pid)
	if [ -z "$pid" ]; then
		not_ok "with the test host's link down, a checker 'fping -q -- $HOST_ADDR' runs within 6 s"
	else
		uid=$(sd_uid_of "$pid")
		parent=$(sd_stat_field "$pid" 4)
		gparent=$(sd_stat_field "$parent" 4)
		scope=$(sd_units 'mandos-checker-gw-*' | head -n 1)
		scg=$(sd_prop "$scope" ControlGroup)
		if [ "$uid" = "$MANDOS_UID" ] && [ -n "$scope" ] && [ "$(sd_cgroup_of "$pid")" = "$scg" ] &&
			{ [ "$parent" = "$main" ] || [ "$gparent" = "$main" ]; }; then
			ok "the checker (PID $pid, '$(sd_args "$pid")') runs as _mandos in its scope $scope ($scg), a child of the server"
		else
			not_ok "the checker (PID $pid) runs as _mandos (uid $uid) in a scope '$scope' ($scg; it is in $(sd_cgroup_of "$pid"))," \
				"started by the server $main (its parent $parent, grandparent $gparent)"
		fi
		out=$(sd_units 'mandos-checker-*' | tr '\n' ' ')
		check "systemctl list-units 'mandos-checker-*' shows it: $out" test -n "$out"
		if cap_has "$pid" 13; then
			ok "the checker has CAP_NET_RAW (effective)"
		else
			not_ok "the checker has CAP_NET_RAW (effective) ($(sd_run grep ^Cap "/proc/$pid/status" 2>&1 | tr '\n' ' '))"
		fi
		if [ -n "$scope" ]; then
			sd_run systemctl stop "$scope"
			# shellcheck disable=SC2016
			wait_until 5 eval '[ -z "$(sd_run cat /proc/$pid/stat 2>/dev/null | grep -v " Z ")" ]'
			out=$(sd_run cat "/proc/$pid/stat" 2>/dev/null | grep -v ' Z ')
			check "systemctl stop $scope kills the checker (PID $pid)" test -z "$out"
		fi
	fi
	gw_checker_was "$n" "with the host's link down" failed

	n=$(jcount "Checker for gw succeeded")
	ip -n "$HOSTNS" link set vhost up
	gw_checker_was "$n" "with the link up again" succeeded

	# The host goes away with its namespace (and the veth pair with it).
	ip netns del "$HOSTNS" && HOSTNS_MADE=
	n=$(jcount "Checker for gw failed")
	gw_checker_was "$n" "with the host's namespace deleted" failed
	out=$(prop gw Enabled)
	check "gw is still enabled within its timeout (Enabled: $out)" test "$out" = "b true"
}

# ------------------------------------------------ 4. restart under load

part_restart() {
	local name before after main1 main2 inode1 inode2 t0 t1 load_pid real_pid out total handled \
		got sock_states load_t0

	# lapsed expired one interval after the server started.
	if ! jwait 5 "Client lapsed has expired"; then
		not_ok "lapsed is disabled by expiry before the restart"
	fi
	before=''
	for name in alpha bravo lapsed; do
		before+="$name:$(prop "$name" Enabled) "
	done
	check "before the restart: alpha and bravo enabled, lapsed disabled ($before)" \
		test "$before" = "alpha:b true bravo:b true lapsed:b false "
	main1=$(sd_main_pid mandos.service)
	inode1=$(listen_inode)

	# The load, in the manager's network namespace.
	setsid nsenter -t "$SD_PID1" -n "$PY" "$SYSTEM_TEST_DIR/connect_load.py" \
		::1 "$PORT" "$LOAD_RATE" "$LOAD_SECONDS" "$SCRATCH/load.txt" \
		</dev/null >"$SCRATCH/load.out" 2>"$SCRATCH/load.err" &
	load_pid=$!
	remember_pid "$load_pid"
	# A real client, fetching again and again meanwhile.
	(
		end=$(($(now_ms) + LOAD_SECONDS * 1000))
		while [ "$(now_ms)" -lt "$end" ]; do
			got=$(fetch alpha "[::1]:$PORT" 15)
			if [ "$got" = "$(secret_of alpha)" ]; then echo ok; else echo "fail ${#got}"; fi
		done >"$SCRATCH/real-fetches.txt"
	) &
	real_pid=$!
	remember_pid "$real_pid"

	sock_states=''
	sleep "$RESTART_AT"
	t0=$(now_ms)
	sd_run systemctl restart mandos.service &
	# the socket's state, every 0.1 s while the service restarts
	while kill -0 $! 2>/dev/null; do
		sock_states+="$(sd_prop mandos.socket ActiveState) "
		sleep 0.1
	done
	wait $!
	out=$?
	t1=$(now_ms)
	main2=$(sd_main_pid mandos.service)
	if [ "$out" = 0 ] && is_active && [ -n "$main2" ] && [ "$main2" != "$main1" ]; then
		ok "systemctl restart mandos.service: a new server (PID $main1 -> $main2) in $((t1 - t0)) ms"
	else
		not_ok "systemctl restart mandos.service (exit $out, $(service_state), PID $main1 -> $main2)"
	fi
	wait "$load_pid"
	wait "$real_pid"
	inode2=$(listen_inode)
	sock_states=$(tr ' ' '\n' <<<"$sock_states" | sed '/^$/d' | sort | uniq -c | tr -s ' \n' ' ')
	if [ -n "$inode1" ] && [ "$inode1" = "$inode2" ] && [ "$(sd_prop mandos.socket ActiveState)" = active ] &&
		[[ $sock_states != *inactive* && $sock_states != *failed* ]]; then
		ok "the listening socket stays open across the restart (inode $inode1; mandos.socket:$sock_states)"
	else
		not_ok "the listening socket stays open across the restart (inode '$inode1' -> '$inode2'; mandos.socket:$sock_states)"
	fi

	total=$(awk '$1 == "total" { print $2 }' "$SCRATCH/load.out")
	handled=$(awk '$1 == "handled" { print $2 }' "$SCRATCH/load.out")
	out=$(grep -Ev '^(total|t0) ' "$SCRATCH/load.out" | tr '\n' ',')
	if [ -n "$total" ] && [ "$total" -gt 0 ] && [ "${handled:-0}" = "$total" ]; then
		ok "$total connections at $LOAD_RATE/s across the restart: all handled, none refused, reset or lost"
	else
		not_ok "$total connections at $LOAD_RATE/s across the restart: all handled (got: ${out:-nothing}" \
			"$(head -c 300 "$SCRATCH/load.err"))"
		awk '$3 != "handled"' "$SCRATCH/load.txt" | head -n 10 | sed 's/^/#   not handled: start_ms end_ms outcome: /'
	fi
	# Connections made while the service was down or starting: they waited
	# in the socket's queue.
	load_t0=$(awk '$1 == "t0" { print $2 }' "$SCRATCH/load.out")
	out=$(awk -v a=$((t0 - ${load_t0:-0})) -v b=$((t1 - ${load_t0:-0})) \
		'$1 >= a && $1 <= b { n++; d = $2 - $1; if (d > m) m = d } END { printf "%d %d", n, m }' "$SCRATCH/load.txt")
	if [ -n "$load_t0" ] && [ "${out% *}" -ge 1 ]; then
		ok "${out% *} of them were made during the restart ($((t1 - t0)) ms) and handled (the slowest in ${out#* } ms)"
	else
		not_ok "some connections were made during the restart (${out% *} of them)"
	fi
	out=$(sort "$SCRATCH/real-fetches.txt" | uniq -c | tr -s ' \n' ' ')
	if [ -s "$SCRATCH/real-fetches.txt" ] && ! grep -qv '^ok$' "$SCRATCH/real-fetches.txt"; then
		ok "a real mandos-client fetching in a loop got its secret every time ($out)"
	else
		not_ok "a real mandos-client fetching in a loop got its secret every time ($out)"
	fi

	after=''
	for name in alpha bravo lapsed; do
		after+="$name:$(prop "$name" Enabled) "
	done
	check "after the restart the clients' states are unchanged ($after)" test "$after" = "$before"
	sleep 2
	out=$(prop lapsed Enabled)
	check "2 s later lapsed is still disabled ($out)" test "$out" = "b false"
	expect_secret "alpha gets its secret from the new server" alpha "[::1]:$PORT" 15
}

# ------------------------------------------------------------ 5. reload

part_reload() {
	local main1 main2 out n

	main1=$(sd_main_pid mandos.service)
	n=$(journal -o json | grep -c "\"MESSAGE_ID\":\"$MESSAGE_ID_RELOADED\"")
	install_conf clients.conf.new clients.conf || bail "cannot edit the namespace's clients.conf"
	if sd_run systemctl reload mandos; then
		ok "systemctl reload mandos"
	else
		not_ok "systemctl reload mandos ($(sd_run systemctl status --no-pager mandos.service 2>&1 | tail -n 5 | tr '\n' '|'))"
	fi
	# shellcheck disable=SC2016 # for eval
	wait_until 5 eval '[ "$(journal -o json | grep -c "\"MESSAGE_ID\":\"$MESSAGE_ID_RELOADED\"")" -gt "$n" ]'
	main2=$(sd_main_pid mandos.service)
	check "the server was reloaded, not restarted (PID $main1 -> $main2)" test "$main1" = "$main2" -a -n "$main1"
	out=$(journal -o json | grep "\"MESSAGE_ID\":\"$MESSAGE_ID_RELOADED\"" | grep -c '"MANDOS_CLIENT":"charlie"')
	check "the journal has the reload's MESSAGE_ID entry for the new client charlie" test "$out" -ge 1
	expect_secret "after the reload, the new client charlie gets its secret" charlie "[::1]:$PORT" 15
	expect_secret "after the reload, alpha still gets its secret" alpha "[::1]:$PORT" 15
	out=$(prop charlie Enabled)
	check "charlie is on the bus, enabled ($out)" test "$out" = "b true"
}

# ------------------------------------- 7. SIGKILL of the server, stop

# sleeper_pids: the PIDs of sleeper's running checkers.
sleeper_pids() {
	local p
	p=$(sd_pids_with_args "sleep 300")
	[ -n "$p" ] && printf '%s\n' "$p"
}

part_kill() {
	local main1 main2 pids scope out p left

	install_conf clients.conf.kill clients.conf || bail "cannot edit the namespace's clients.conf"
	sd_run systemctl reload mandos
	pids=$(wait_until 10 sleeper_pids)
	scope=$(sd_units 'mandos-checker-sleeper-*' | head -n 1)
	if [ -n "$pids" ] && [ -n "$scope" ]; then
		ok "after a reload of the root-only clients.conf, sleeper's checker runs (PID $pids) in $scope"
	else
		not_ok "after a reload, sleeper's checker runs in a scope (PIDs '$pids', scope '$scope')"
	fi
	main1=$(sd_main_pid mandos.service)
	sd_run kill -KILL "$main1"
	sleep 1
	# shellcheck disable=SC2016
	wait_until 15 eval 'main2=$(sd_main_pid mandos.service); [ -n "$main2" ] && [ "$main2" != 0 ] && [ "$main2" != "$main1" ] && is_active'
	main2=$(sd_main_pid mandos.service)
	check "SIGKILL of the server ($main1): systemd restarts the service (new server $main2, $(service_state))" \
		test -n "$main2" -a "$main2" != "$main1" -a "$main2" != 0
	left=''
	for p in $pids; do
		[ "$(sd_args "$p")" = "sleep 300" ] && left+=" $p"
	done
	out=$(sd_run systemctl is-active "$scope" 2>/dev/null)
	check "no checker of the killed server outlives it (left:${left:- none}; $scope: $out)" \
		test -z "$left" -a "$out" != active
	out=$(prop lapsed Enabled)
	check "the state survives the SIGKILL: lapsed is still disabled ($out)" test "$out" = "b false"
	expect_secret "the restarted server serves alpha" alpha "[::1]:$PORT" 15

	pids=$(wait_until 10 sleeper_pids)
	sd_run systemctl stop mandos.service
	out=$(sd_units 'mandos-checker-*' | while read -r u; do sd_run systemctl is-active "$u"; done | grep -c '^active$')
	left=$(sleeper_pids | tr '\n' ' ')
	check "systemctl stop mandos.service kills the checkers (was: $pids; left: ${left:-none}) and their scopes ($out active)" \
		test -z "$left" -a "$out" = 0
}

# ------------------------------------------------ 6. verify, security

part_analyze() {
	local out rc level page line missing=''

	# verify looks each Documentation= page up with man(1): the host may
	# have pages of the same names (Debian's mandos), so say whose they are.
	for page in $(sed -n 's/^Documentation=//p' "$DESTDIR$SERVICE_PATH" "$DESTDIR$SOCKET_PATH" |
		tr ' ' '\n' | sed -n 's/^man:\(.*\)(\([0-9a-z]*\))$/\1.\2/p' | sort -u); do
		[ -n "$(cd "$DESTDIR" && find . -path "*/man/man${page##*.}/$page*" | head -n 1)" ] ||
			missing+=" $page"
	done
	if [ -z "$missing" ]; then
		ok "meson installs every man page the units' Documentation= names"
	else
		not_ok "meson installs every man page the units' Documentation= names (missing:$missing)"
	fi

	out=$(cd / && sd_run systemd-analyze verify "$SD_DIR/units/mandos.socket" "$SD_DIR/units/mandos.service" 2>&1)
	rc=$?
	if [ "$rc" = 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify mandos.socket mandos.service: clean"
	else
		not_ok "systemd-analyze verify mandos.socket mandos.service: clean (exit $rc)"
		while IFS= read -r line; do diag "  $line"; done <<<"$out"
	fi

	out=$(sd_run systemd-analyze security --no-pager mandos.service 2>&1)
	level=$(sed -n 's/.*Overall exposure level for mandos\.service: *\([0-9.]*\).*/\1/p' <<<"$out")
	diag "systemd-analyze security mandos.service: exposure $level"
	if [ -n "$level" ] && awk -v l="$level" -v m="$EXPOSURE_MAX" 'BEGIN { exit !(l <= m) }'; then
		ok "systemd-analyze security mandos.service: exposure $level <= $EXPOSURE_MAX"
	else
		not_ok "systemd-analyze security mandos.service: exposure ${level:-?} <= $EXPOSURE_MAX"
		grep -E '^✗' <<<"$out" | sed 's/^/#   /'
	fi
	grep -E '^✗' <<<"$out" | sed 's/^/#   exposed: /'
}

# --------------------------------------------------- no secret anywhere

part_no_secret() {
	local name found='' pat
	local -a pats=()

	sd_run journalctl --no-pager -o export >"$SCRATCH/journal.export" 2>&1
	for name in alpha bravo charlie; do
		pats+=("$(secret_of "$name")")
		# every line of the (encrypted, base64) secret in clients.conf
		while read -r pat; do
			[ "${#pat}" -ge 16 ] && pats+=("$pat")
		done < <(sed -n '/^secret *=/,/^[^[:space:]]/{/^[[:space:]]/p}' "$(key_dir "$name")/section.conf")
		# its first 16 bytes, in hex
		pat=$(sed -n '/^secret *=/,/^[^[:space:]]/{/^[[:space:]]/p}' "$(key_dir "$name")/section.conf" |
			tr -d ' \t\n' | base64 -d 2>/dev/null | head -c 16 | od -An -tx1 | tr -d ' \n')
		[ -n "$pat" ] && pats+=("$pat" "${pat^^}")
	done
	for name in gw lapsed; do
		pats+=("$(printf 'secret of %s' "$name")" "$(printf 'secret of %s' "$name" | base64 -w0)")
	done
	printf '%s\n' "${pats[@]}" >"$SCRATCH/secret-patterns"
	found=$(grep -ahoF -f "$SCRATCH/secret-patterns" "$SCRATCH/journal.export" "$SD_DIR/console.log" |
		sort -u | cut -c1-24 | sed "s/.*/ '&...'/" | tr -d '\n')
	if [ -z "$found" ]; then
		ok "no secret anywhere in the journal ($(grep -ac '^__CURSOR=' "$SCRATCH/journal.export") entries; ${#pats[@]} patterns)"
	else
		not_ok "no secret anywhere in the journal (found:$found)"
	fi
}

if part_activation; then
	part_bus_journal
	part_status
	part_checker
	part_restart
	part_reload
	part_kill
else
	not_ok "mandos.service does not run: parts 2-5 not tried"
fi
part_analyze
part_no_secret

if [ "$_fail_count" -gt 0 ]; then
	sd_dump_journal "$SCRATCH/namespace-journal.log"
fi
finish
