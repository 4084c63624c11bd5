#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# The shape of the D-Bus API (mandos-dbus-api(7)): introspection of "/" and of a
# client object has every interface, member, argument and property (type
# and access) of the reference's (reference/introspect-*.xml); the
# ObjectManager and the deprecated server methods give the reference's
# layout with correctly typed values; object paths are escaped as the
# reference does, other names encoded, colliding names refused; our own
# server properties (se.recompile.Mandos.Server) say where we listen and
# let the log level change at run time.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus

# rename NAME SECTION: SECTION with its [header] renamed to NAME.
rename() { printf '%s\n' "$2" | sed "1s/^\[.*\]\$/[$1]/"; }

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'interval = 30d')" \
	"$(rename bravo.x-y "$(client_section bravo 'interval = 30d')")" \
	"$(rename 'odd name+1' "$(client_section charlie 'interval = 30d')")" \
	"$(rename a.b "$(client_section delta 'interval = 30d')")" \
	"$(rename a-b "$(client_section delta 'interval = 30d')")"

if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"

# ------------------------------------------------------------------ names

owner=$(bctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s se.recompile.Mandos)
owner2=$(bctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s se.bsnet.fukt.Mandos)
check "both bus names are ours ($owner, $owner2)" test -n "$owner" -a "$owner" = "$owner2"

# ---------------------------------------------------------- introspection

compare() {
	local desc=$1 ref=$2 path=$3 out
	out="$SCRATCH/introspect$(printf '%s' "$path" | tr / _).xml"
	if ! bctl --xml-interface introspect "$BUS_NAME" "$path" >"$out" 2>"$out.err"; then
		not_ok "$desc (introspection failed: $(cat "$out.err"))"
		return
	fi
	if "$PY" "$DBUS_CHECK" introspect "$TEST_DIR/reference/$ref" "$out" >"$out.check" 2>&1; then
		ok "$desc"
	else
		not_ok "$desc"
		sed 's/^/#   /' "$out.check"
	fi
}
compare "introspection of / has all of the reference's" introspect-server.xml /
compare "introspection of a client has all of the reference's" introspect-client.xml /clients/alpha
compare "...also for an escaped name" introspect-client.xml /clients/bravo_x_y
bctl --xml-interface introspect "$BUS_NAME" /clients >"$SCRATCH/clients.xml" 2>&1
children=$("$PY" -c '
import sys, xml.etree.ElementTree as ET
print(" ".join(sorted(n.get("name") for n in ET.parse(sys.argv[1]).getroot().findall("node"))))' \
	"$SCRATCH/clients.xml" 2>&1)
check "/clients lists every client object ($children)" test "$children" = "a_b alpha bravo_x_y odd_20name_2b1"
check "/ lists the child node clients" grep -q '<node name="clients"/>' "$SCRATCH/introspect_.xml"
if bctl introspect "$BUS_NAME" /clients/nosuch >"$SCRATCH/nosuch.out" 2>&1; then
	not_ok "a path that is no client's is no object"
else
	check "a path that is no client's is no object ($(cat "$SCRATCH/nosuch.out"))" \
		grep -qi 'unknown object\|No client has' "$SCRATCH/nosuch.out"
fi
check "Peer.Ping on a client object" bctl call "$BUS_NAME" /clients/alpha org.freedesktop.DBus.Peer Ping

# ------------------------------------------------------------------ layout

if DBUS_SYSTEM_BUS_ADDRESS="$BUS" "$PY" "$DBUS_CHECK" layout >"$SCRATCH/layout.check" 2>&1; then
	ok "GetManagedObjects, GetAllClients(WithProperties), GetAll: the reference's layout and types"
else
	not_ok "GetManagedObjects, GetAllClients(WithProperties), GetAll: the reference's layout and types"
	sed 's/^/#   /' "$SCRATCH/layout.check"
fi
expect_prop "Name of the escaped object" bravo.x-y Name 's "bravo.x-y"'
check "a name with other characters: '_xx' for each other byte" \
	bctl get-property "$BUS_NAME" /clients/odd_20name_2b1 "$CLIENT_IFACE" Name
check "colliding object paths: the second client is refused, with a clear log line" \
	log_has "Clients 'a.b' and 'a-b' would share the D-Bus object /clients/a_b; ignoring 'a-b'" 1
expect_prop "...and the first keeps the path" a.b Name 's "a.b"'
check "mandos-ctl lists the clients" bash -c "DBUS_SYSTEM_BUS_ADDRESS='$BUS' mandos-ctl | grep -c '^[a-z]' | grep -qx 4"

# ---------------------------------------------------- our server properties

server_prop() { bctl get-property "$BUS_NAME" / se.recompile.Mandos.Server "$1" 2>&1; }
check "ListenPort is the port ($(server_prop ListenPort))" test "$(server_prop ListenPort)" = "q $PORT"
check "ListenAddress is the bound address ($(server_prop ListenAddress))" test "$(server_prop ListenAddress)" = 's "::"'
check "Interface is empty (any)" test "$(server_prop Interface)" = 's ""'
check "ServiceName is Mandos" test "$(server_prop ServiceName)" = 's "Mandos"'
check "ClientCount is 4 ($(server_prop ClientCount))" test "$(server_prop ClientCount)" = "u 4"
check "Version ($(server_prop Version))" test "$(server_prop Version)" = 's "1.8.16"'
check "LogLevel is DEBUG under --debug" test "$(server_prop LogLevel)" = 's "DEBUG"'
check "set LogLevel WARNING" bctl set-property "$BUS_NAME" / se.recompile.Mandos.Server LogLevel s WARNING
check "LogLevel reads WARNING" test "$(server_prop LogLevel)" = 's "WARNING"'
expect_secret "a fetch" alpha "[::1]:$PORT"
check "...is not logged at INFO any more" test "$(log_count 'Sending secret to alpha')" = 0
check "set LogLevel info (any case)" bctl set-property "$BUS_NAME" / se.recompile.Mandos.Server LogLevel s info
expect_secret "a fetch" alpha "[::1]:$PORT"
check "...is logged again" log_has 'Sending secret to alpha'
check "DEBUG is not logged at INFO" test "$(grep -c 'DEBUG: Protocol version' "$MANDOS_LOG")" = 0
if bctl set-property "$BUS_NAME" / se.recompile.Mandos.Server LogLevel s LOUD >"$SCRATCH/loud.out" 2>&1; then
	not_ok "an unknown log level is refused"
else
	check "an unknown log level is refused ($(cat "$SCRATCH/loud.out"))" test "$(server_prop LogLevel)" = 's "INFO"'
fi
if bctl set-property "$BUS_NAME" / se.recompile.Mandos.Server ClientCount u 1 >/dev/null 2>&1; then
	not_ok "ClientCount is read-only"
else
	ok "ClientCount is read-only"
fi
check "mandos-ctl --remove" ctl --remove alpha
check "ClientCount follows a removal" test "$(server_prop ClientCount)" = "u 3"
# Paths are computed from names, not stored: an escaped one is found, named
# by ObjectPath, and removed like any other.
check "ObjectPath of an escaped object is its path" \
	test "$(bctl get-property "$BUS_NAME" /clients/odd_20name_2b1 "$CLIENT_IFACE" ObjectPath 2>&1)" = 'o "/clients/odd_20name_2b1"'
check "mandos-ctl --remove of an escaped name" ctl --remove bravo.x-y
check "ClientCount follows (u 2)" test "$(server_prop ClientCount)" = "u 2"
if bctl introspect "$BUS_NAME" /clients/bravo_x_y >"$SCRATCH/removed.out" 2>&1; then
	not_ok "the removed escaped object is gone"
else
	check "the removed escaped object is gone" grep -qi 'unknown object\|No client has' "$SCRATCH/removed.out"
fi
expect_prop "...the other escaped one stays" a.b Name 's "a.b"'

stop_mandos TERM
finish
