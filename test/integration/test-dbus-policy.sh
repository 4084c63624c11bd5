#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# The bus policy dbus/se.recompile.Mandos.conf (mandos-dbus-api(7), BUS NAMES
# AND ACCESS), installed in a private system bus: root and the _mandos group
# may call the server; anybody else (nobody) can neither approve, nor set a
# property, nor read the client list, nor take the server's names. A second
# server that cannot have the names goes on without D-Bus, serving.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus
getent passwd nobody >/dev/null || skip "needs the user nobody"
getent group _mandos >/dev/null || skip "needs the group _mandos (Debian package mandos)"
mandos_user=$(getent group _mandos | cut -d: -f4 | cut -d, -f1)
[ -n "$mandos_user" ] || mandos_user=$(getent passwd | awk -F: -v g="$(getent group _mandos | cut -d: -f3)" '$4 == g { print $1; exit }')
[ -n "$mandos_user" ] || skip "no user is in the group _mandos"

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha 'interval = 20d' 'checker = true' \
	'approval_delay = PT30S' 'approved_by_default = False')"

if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus (as $(ps -o user= -p "$MANDOS_PID" 2>/dev/null), owning the names by the group rule)"
	finish
fi
ok "server starts with D-Bus, owning the names as $(ps -o user= -p "$MANDOS_PID")"
unique=$(bctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s "$BUS_NAME" |
	sed 's/^s "\(.*\)"$/\1/')

# as USER CMD...: run CMD as USER with USER's own groups.
as() {
	local user=$1
	shift
	setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups "$@"
}

# send USER DEST PATH METHOD ARGS...: dbus-send as USER; output on stdout.
send() {
	local user=$1 dest=$2 path=$3
	shift 3
	as "$user" dbus-send --bus="$BUS" --print-reply --dest="$dest" "$path" "$@" 2>&1
}

# denied DESC USER DEST PATH METHOD ARGS...: the bus refuses the call.
denied() {
	local desc=$1 out
	shift
	if out=$(send "$@"); then
		not_ok "$desc is refused (it was not: $out)"
	elif printf '%s' "$out" | grep -q '^Error org.freedesktop.DBus.Error.AccessDenied'; then
		ok "$desc is refused by the bus"
	else
		not_ok "$desc is refused by the bus (got: $out)"
	fi
}

# allowed DESC USER DEST PATH METHOD ARGS...: the call goes through.
allowed() {
	local desc=$1 out
	shift
	if out=$(send "$@"); then ok "$desc"; else not_ok "$desc ($out)"; fi
}

ALPHA=/clients/alpha
PROPS=org.freedesktop.DBus.Properties

# ------------------------------------------------------------------ nobody

check "nobody is neither root nor in _mandos" bash -c "! id -nG nobody | grep -qw _mandos"
fetch_bg alpha "$SCRATCH/alpha.out" 20
wait_file_has "$MANDOS_LOG" "Client alpha needs approval" 10 || not_ok "alpha waits for approval"
denied "nobody: Approve(true)" nobody "$BUS_NAME" $ALPHA $CLIENT_IFACE.Approve boolean:true
denied "nobody: Approve(true) on the deprecated name and interface" nobody se.bsnet.fukt.Mandos $ALPHA \
	se.bsnet.fukt.Mandos.Client.Approve boolean:true
denied "nobody: Approve(true) sent to the server's unique name $unique" nobody "$unique" $ALPHA \
	$CLIENT_IFACE.Approve boolean:true
sleep 1
check "...alpha is still waiting, unapproved" test ! -s "$SCRATCH/alpha.out"
expect_prop "...and ApprovalPending" alpha ApprovalPending "b true"
denied "nobody: Set Enabled false" nobody "$BUS_NAME" $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Enabled variant:boolean:false
denied "nobody: Set Host" nobody "$BUS_NAME" $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Host variant:string:evil
denied "nobody: Set LogLevel" nobody "$BUS_NAME" / $PROPS.Set string:se.recompile.Mandos.Server string:LogLevel variant:string:DEBUG
denied "nobody: RemoveClient" nobody "$BUS_NAME" / se.recompile.Mandos.RemoveClient objpath:$ALPHA
denied "nobody: GetManagedObjects" nobody "$BUS_NAME" / org.freedesktop.DBus.ObjectManager.GetManagedObjects
denied "nobody: Get KeyID" nobody "$BUS_NAME" $ALPHA $PROPS.Get string:$CLIENT_IFACE string:KeyID
denied "nobody: RequestName $BUS_NAME" nobody org.freedesktop.DBus /org/freedesktop/DBus \
	org.freedesktop.DBus.RequestName string:$BUS_NAME uint32:4
denied "nobody: RequestName se.bsnet.fukt.Mandos" nobody org.freedesktop.DBus /org/freedesktop/DBus \
	org.freedesktop.DBus.RequestName string:se.bsnet.fukt.Mandos uint32:4
if as nobody env DBUS_SYSTEM_BUS_ADDRESS="$BUS" mandos-ctl >"$SCRATCH/nobody-ctl.out" 2>&1; then
	not_ok "nobody: mandos-ctl fails"
else
	ok "nobody: mandos-ctl fails ($(grep -m1 -o 'Failed to access Mandos server through D-Bus' "$SCRATCH/nobody-ctl.out"))"
fi
expect_prop "...alpha is still enabled" alpha Enabled "b true"
expect_prop "...with its host" alpha Host 's "alpha"'

# ---------------------------------------------------- _mandos group, root

allowed "$mandos_user (group _mandos): Get KeyID" "$mandos_user" "$BUS_NAME" $ALPHA $PROPS.Get string:$CLIENT_IFACE string:KeyID
allowed "$mandos_user (group _mandos): Set Host" "$mandos_user" "$BUS_NAME" $ALPHA $PROPS.Set \
	string:$CLIENT_IFACE string:Host variant:string:alpha.example
expect_prop "...Host is set" alpha Host 's "alpha.example"'
allowed "root: Approve(true)" root "$BUS_NAME" $ALPHA $CLIENT_IFACE.Approve boolean:true
wait_pid "$FETCH_PID" 15 || kill_pid "$FETCH_PID"
check "...alpha got its secret" test "$(cat "$SCRATCH/alpha.out")" = "$(secret_of alpha)"

# ------------------------------------------ a second server: names taken

first_log=$MANDOS_LOG
first_pid=$MANDOS_PID
first_port=$PORT
PORT=
STATEDIR=
start_mandos_cmd env DBUS_SYSTEM_BUS_ADDRESS="$BUS" "$MANDOS" --foreground --debug --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$(new_statedir)" --port "${PORT:=$(free_port)}"
if wait_listening "$PORT" 10; then
	ok "a second server on the same bus starts anyway"
else
	not_ok "a second server on the same bus starts anyway"
fi
check "...logs that it cannot have the name" log_has "Failed to acquire the D-Bus name $BUS_NAME"
check "...and goes on without D-Bus" log_has "Disabling D-Bus"
check "...while the first keeps the name" test "$(bctl call org.freedesktop.DBus /org/freedesktop/DBus \
	org.freedesktop.DBus GetNameOwner s "$BUS_NAME")" = "s \"$unique\""
check "...and the deprecated one" test "$(bctl call org.freedesktop.DBus /org/freedesktop/DBus \
	org.freedesktop.DBus GetNameOwner s se.bsnet.fukt.Mandos)" = "s \"$unique\""
stop_mandos TERM
MANDOS_LOG=$first_log
MANDOS_PID=$first_pid
PORT=$first_port
check "root: set alpha back to approve by default, no delay" \
	ctl --approve-by-default --approval-delay PT0S alpha
server_alive_and_serving "the first server" alpha
stop_mandos TERM
finish
