#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317,SC2034 # helpers take optional args; functions called indirectly; CONFDIR is read by zc_start_mandos
#
# Service name collisions (docs/REFERENCE-BEHAVIOUR.md, Zeroconf): two hosts on
# one link, each with its own avahi-daemon and server, both named "Mandos". The
# second one renames its service to "Mandos #2" (avahi's alternative name) and
# logs it; the first keeps its name. A third server on the second host, started
# as "Mandos #2", collides locally (same avahi-daemon) and becomes "Mandos #3".
# All three are browsable from both hosts, and each serves: every client is
# known to one server only, and the real mandos-client, browsing on its own,
# gets each secret from the right one.
#
#   s1 (bus, avahi, server 1: alpha) ==vsrv/vc1==+
#                                                 br0 in cli (mandos-client)
#   s2 (bus, avahi, servers 2: bravo ==vsrv/vc2==+
#                   and 3: charlie)

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf

for c in alpha bravo charlie; do
	write_config "$SCRATCH/conf-$c" "$(client_section $c)"
	ensure_keys $c
done

zc_netns s1
zc_netns s2
zc_netns cli
zc_link s1 vsrv cli vc1
zc_link s2 vsrv cli vc2
zc_bridge cli br0 vc1 vc2
zc_wait_link_local s1 vsrv
zc_wait_link_local s2 vsrv
zc_wait_link_local cli br0
zc_bus s1
zc_bus s2
zc_start_avahi s1
zc_start_avahi s2

# ----------------------------------------------------------- server 1 on s1
CONFDIR="$SCRATCH/conf-alpha"
zc_start_mandos s1
pid1=$MANDOS_PID log1=$MANDOS_LOG
if port1=$(zc_wait_port "$pid1" 10) && took=$(zc_wait_service s1 Mandos "$port1" 10); then
	ok "server 1 is announced as 'Mandos' on port $port1 (after ${took}s)"
else
	not_ok "server 1 is announced as 'Mandos'"
	finish
fi
if zc_wait_service s2 Mandos "$port1" 10 >/dev/null; then
	ok "s2 sees server 1 as 'Mandos' over the link"
else
	not_ok "s2 sees server 1 as 'Mandos' over the link"
fi

# ------------------------------------- server 2 on s2: a collision on the link
CONFDIR="$SCRATCH/conf-bravo"
zc_start_mandos s2
pid2=$MANDOS_PID log2=$MANDOS_LOG
port2=$(zc_wait_port "$pid2" 10) || not_ok "server 2 listens"
if log_has "Changing Zeroconf service name to 'Mandos #2' ..." 10 "$log2"; then
	ok "server 2 logs: Changing Zeroconf service name to 'Mandos #2' ..."
else
	not_ok "server 2 logs: Changing Zeroconf service name to 'Mandos #2' ..."
fi
check "server 2 logs: Zeroconf service name collision." \
	log_has "Zeroconf service name collision." 1 "$log2"
zc_check_service "server 2 is announced as 'Mandos #2' on port $port2" s2 "Mandos #2" "$port2" 10

# ------------------------- server 3 on s2 as "Mandos #2": a local collision
CONFDIR="$SCRATCH/conf-charlie"
zc_start_mandos s2 --servicename "Mandos #2"
pid3=$MANDOS_PID log3=$MANDOS_LOG
port3=$(zc_wait_port "$pid3" 10) || not_ok "server 3 listens"
check "server 3 logs: Local Zeroconf service name collision." \
	log_has "Local Zeroconf service name collision." 10 "$log3"
check "server 3 logs: Changing Zeroconf service name to 'Mandos #3' ..." \
	log_has "Changing Zeroconf service name to 'Mandos #3' ..." 1 "$log3"
zc_check_service "server 3 is announced as 'Mandos #3' on port $port3" s2 "Mandos #3" "$port3" 10

# ------------------------------------------------------- all of them, both sides
expected=$(printf '%s\n' "Mandos $port1" "Mandos #2 $port2" "Mandos #3 $port3" | LC_ALL=C sort)
for site in s1 s2; do
	zc_wait_service "$site" "Mandos #3" "$port3" 10 >/dev/null
	got=$(zc_services "$site" | awk -F'|' '{ print $1 " " $4 }' | LC_ALL=C sort -u)
	if [ "$got" = "$expected" ]; then
		ok "$site browses all three: Mandos, Mandos #2, Mandos #3, each on its own port"
	else
		not_ok "$site browses all three (got: $(echo "$got" | tr '\n' ','))"
	fi
done
check "server 1 kept its name" test "$(grep -c 'Changing Zeroconf service name' "$log1")" -eq 0
check "server 2 was renamed once" test "$(grep -c 'Changing Zeroconf service name' "$log2")" -eq 1
check "server 3 was renamed once" test "$(grep -c 'Changing Zeroconf service name' "$log3")" -eq 1

# ----------------------------------------------------------- each one serves
zc_expect_secret "alpha (known to server 1 only) finds it and gets its secret" cli br0 alpha 40
check "server 1 sent alpha's secret" log_has "Sending secret to alpha" 1 "$log1"
zc_expect_secret "bravo (known to server 2 'Mandos #2' only) finds it and gets its secret" cli br0 bravo 40
check "server 2 sent bravo's secret" log_has "Sending secret to bravo" 1 "$log2"
zc_expect_secret "charlie (known to server 3 'Mandos #3' only) finds it and gets its secret" cli br0 charlie 40
check "server 3 sent charlie's secret" log_has "Sending secret to charlie" 1 "$log3"

for pid in "$pid3" "$pid2" "$pid1"; do
	MANDOS_PID=$pid
	stop_mandos TERM
	check "server (pid $pid) exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
done

finish
