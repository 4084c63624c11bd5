#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Bad requests over D-Bus (mandos-dbus-api(7), ERRORS): a value of the wrong
# type, a negative or absurd duration, a bad checker template, a read-only or
# unknown property, Get of the write-only Secret, RemoveClient of an unknown
# path, a method with wrong arguments. Each gets a D-Bus error (with the error
# name we promise), leaves the client as it was, and the server goes on serving
# real clients, also when the bus itself goes away. mandos-ctl's integer
# durations (any integer type) are taken.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_dbus

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha 'interval = 20d' 'checker = true')"

if ! start_mandos_dbus; then
	not_ok "server starts with D-Bus"
	finish
fi
ok "server starts with D-Bus"

ALPHA=/clients/alpha
PROPS=org.freedesktop.DBus.Properties
ERR=org.freedesktop.DBus.Error

# call PATH INTERFACE.METHOD ARGS...: dbus-send to our server; output and
# errors (which carry the error name) on stdout.
call() {
	local path=$1
	shift
	dbus-send --bus="$BUS" --print-reply --dest="$BUS_NAME" "$path" "$@" 2>&1
}

# expect_error DESC ERROR PATH INTERFACE.METHOD ARGS...: the call fails with ERROR.
expect_error() {
	local desc=$1 error=$2 out
	shift 2
	if out=$(call "$@"); then
		not_ok "$desc: refused (it was not: $out)"
	elif printf '%s' "$out" | grep -q "^Error $error: "; then
		ok "$desc: $error ($(printf '%s' "$out" | sed -n 's/^Error [^:]*: //p' | head -n1))"
	else
		not_ok "$desc: refused with $error (got: $out)"
	fi
}

# unchanged PROPERTY: the property still has the value it had at the start.
declare -A initial
for p in Enabled Timeout Interval ApprovalDelay Checker Host Name Created KeyID Expires; do
	initial[$p]=$(prop alpha "$p")
done
unchanged() {
	local got
	got=$(prop alpha "$1")
	if [ "$got" = "${initial[$1]}" ]; then ok "...$1 is unchanged"; else not_ok "...$1 is unchanged (now $got, was ${initial[$1]})"; fi
}

# ------------------------------------------------------------ wrong types

expect_error "Set Enabled to a string" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Enabled variant:string:yes
unchanged Enabled
expect_error "Set Enabled to an integer" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Enabled variant:int32:0
unchanged Enabled
expect_error "Set Timeout to a string" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:string:PT1M
expect_error "Set Timeout to a boolean" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:boolean:true
expect_error "Set Timeout to a double" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:double:60000
unchanged Timeout
expect_error "Set Host to an integer" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Host variant:int32:5
unchanged Host
expect_error "Set Secret to a string" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Secret variant:string:abc
expect_error "Set Checker to an object path" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Checker variant:objpath:/x
unchanged Checker
expect_error "Set on the deprecated interface, wrong type" $ERR.InvalidArgs $ALPHA $PROPS.Set \
	string:se.bsnet.fukt.Mandos.Client string:Enabled variant:string:no
unchanged Enabled

# -------------------------------------------------------------- durations

expect_error "a negative Timeout (int32)" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:int32:-5
expect_error "a negative Timeout (int64)" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:int64:-1
expect_error "Timeout 2^64-1 ms" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Timeout variant:uint64:18446744073709551615
expect_error "Timeout of ten years and a millisecond" $ERR.InvalidArgs $ALPHA $PROPS.Set \
	string:$CLIENT_IFACE string:Timeout variant:uint64:315360000001
unchanged Timeout
unchanged Expires
expect_error "Interval 0" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Interval variant:uint64:0
expect_error "a negative Interval" $ERR.InvalidArgs $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Interval variant:int16:-1
unchanged Interval
expect_error "ApprovalDelay of two days" $ERR.InvalidArgs $ALPHA $PROPS.Set \
	string:$CLIENT_IFACE string:ApprovalDelay variant:uint64:172800000
unchanged ApprovalDelay
# What mandos-ctl sends (dbus-python picks the integer type) must work.
for t in byte:7 uint16:7 int32:7 uint32:7 int64:7; do
	if out=$(call $ALPHA $PROPS.Set string:$CLIENT_IFACE string:ExtendedTimeout "variant:$t"); then
		expect_prop "ExtendedTimeout set as ${t%%:*} 7 ms" alpha ExtendedTimeout "t 7"
	else
		not_ok "ExtendedTimeout set as ${t%%:*} ($out)"
	fi
	check "...reset" call $ALPHA $PROPS.Set string:$CLIENT_IFACE string:ExtendedTimeout variant:uint64:900000
done

# ---------------------------------------------------------------- checker

expect_error "a checker naming an unknown field" $ERR.InvalidArgs $ALPHA $PROPS.Set \
	string:$CLIENT_IFACE string:Checker 'variant:string:fping %(nosuch)s'
expect_error "a checker with an unfinished field" $ERR.InvalidArgs $ALPHA $PROPS.Set \
	string:$CLIENT_IFACE string:Checker 'variant:string:fping %(host'
unchanged Checker
if ctl --checker 'ping %(nosuch)s' alpha >"$SCRATCH/ctl-checker.out" 2>&1; then
	not_ok "mandos-ctl --checker with a bad template fails"
else
	ok "mandos-ctl --checker with a bad template fails"
fi
unchanged Checker

# ------------------------------------------------- read-only, write-only, unknown

for p in Name Created KeyID Expires ApprovalPending LastCheckerStatus ObjectPath; do
	expect_error "Set read-only $p" $ERR.PropertyReadOnly $ALPHA $PROPS.Set string:$CLIENT_IFACE string:$p variant:string:x
done
unchanged Name
unchanged Created
unchanged KeyID
expect_error "Get write-only Secret" $ERR.AccessDenied $ALPHA $PROPS.Get string:$CLIENT_IFACE string:Secret
expect_error "Get an unknown property" $ERR.UnknownProperty $ALPHA $PROPS.Get string:$CLIENT_IFACE string:Nope
expect_error "Set an unknown property" $ERR.UnknownProperty $ALPHA $PROPS.Set string:$CLIENT_IFACE string:Nope variant:string:x
expect_error "Set on an unknown interface" $ERR.UnknownInterface $ALPHA $PROPS.Set string:se.recompile.Nope string:Enabled variant:boolean:false
expect_error "GetAll of an unknown interface" $ERR.UnknownInterface $ALPHA $PROPS.GetAll string:se.recompile.Nope
unchanged Enabled

# ---------------------------------------------------------------- methods

expect_error "RemoveClient of an unknown path" $ERR.UnknownObject / se.recompile.Mandos.RemoveClient objpath:/clients/nosuch
expect_error "RemoveClient of /" $ERR.UnknownObject / se.recompile.Mandos.RemoveClient objpath:/
expect_error "RemoveClient (deprecated interface) of an unknown path" $ERR.UnknownObject / \
	se.bsnet.fukt.Mandos.RemoveClient objpath:/clients/nosuch
expect_error "RemoveClient with a string" $ERR.InvalidArgs / se.recompile.Mandos.RemoveClient string:/clients/alpha
expect_error "Approve with a string" $ERR.InvalidArgs $ALPHA $CLIENT_IFACE.Approve string:yes
expect_error "Approve with no argument" $ERR.InvalidArgs $ALPHA $CLIENT_IFACE.Approve
expect_error "an unknown method" $ERR.UnknownMethod $ALPHA $CLIENT_IFACE.Explode
expect_error "Enable on a path that is no client's" $ERR.UnknownObject /clients/nosuch $CLIENT_IFACE.Enable
expect_error "Get on a path that is no client's" $ERR.UnknownObject /clients/nosuch $PROPS.Get string:$CLIENT_IFACE string:Name
check "the client is still there" test "$(bctl get-property "$BUS_NAME" / se.recompile.Mandos.Server ClientCount)" = "u 1"
unchanged Enabled

server_alive_and_serving "after the bad requests" alpha

# The bus itself goes away: secrets matter more than D-Bus.
kill -TERM "$(cat "$SCRATCH/bus-mandos/dbus.pid")"
check "...which the server logs" log_has "Lost the connection to the system bus" 3
server_alive_and_serving "after the system bus went away" alpha
stop_mandos TERM
finish
