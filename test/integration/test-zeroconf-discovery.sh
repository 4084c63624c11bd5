#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# Zeroconf discovery across two network namespaces (mandos(8), ZEROCONF):
# avahi-daemon and the server in one, the real mandos-client without --connect
# in the other; the client finds the server by mDNS alone and gets its secret.
# The announcement is "_mandos._tcp" named "Mandos", on the port the server
# really listens on (an ephemeral one here), IPv6 only, with an empty TXT
# record; it is withdrawn on SIGTERM. With --interface it is announced on that
# interface only; with --no-zeroconf there is no Avahi client at all.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf

config_with alpha

# srv (bus, avahi-daemon, server) ==vsrv/vcli== cli (mandos-client)
#                                 ==vsrv2/vcli2==
zc_netns srv
zc_netns cli
zc_link srv vsrv cli vcli
zc_link srv vsrv2 cli vcli2
zc_wait_link_local srv vsrv
zc_wait_link_local srv vsrv2
zc_wait_link_local cli vcli
zc_bus srv
zc_start_avahi srv

# ------------------------------------------- (1) discovery on an ephemeral port
zc_start_mandos srv
if port=$(zc_wait_port "$MANDOS_PID" 10); then
	ok "server listens (on ephemeral port $port)"
else
	not_ok "server listens"
	finish
fi
if took=$(zc_wait_service srv Mandos "$port" 10); then
	ok "avahi-browse resolves 'Mandos' on port $port (after ${took}s)"
else
	not_ok "avahi-browse resolves 'Mandos' on port $port"
	zc_services srv | sed 's/^/# browse: /'
fi
services=$(zc_services srv)
diag "browse: $(echo "$services" | tr '\n' ' ')"
check "announced on both of avahi's interfaces (vsrv, vsrv2)" \
	test "$(echo "$services" | awk -F'|' '$1 == "Mandos" { print $3 }' | sort -u | tr '\n' ' ')" = "vsrv vsrv2 "
check "announced over IPv6 only (mandos(8), ZEROCONF: AVAHI_PROTO_INET6)" \
	test "$(echo "$services" | awk -F'|' '$1 == "Mandos" { print $2 }' | sort -u)" = IPv6
check "the TXT record is empty" \
	test "$(echo "$services" | awk -F'|' '$1 == "Mandos" { print $5 }' | sort -u)" = ""
check "only one service is announced" \
	test "$(echo "$services" | awk -F'|' '{ print $1 }' | sort -u)" = Mandos
assert_log "Adding Zeroconf service 'Mandos' of type '_mandos._tcp' ..."
assert_log "Zeroconf service established."
check "the server is connected to the system bus (avahi-client)" zc_on_bus srv "$MANDOS_PID"

zc_expect_secret "mandos-client without --connect finds the server and gets alpha's secret" \
	cli vcli alpha 30
assert_log "Sending secret to alpha"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
check "the service is withdrawn when the server stops" zc_gone srv Mandos 5

# ------------------------------------------------- (2) --interface restricts it
zc_start_mandos srv --interface vsrv
if port=$(zc_wait_port "$MANDOS_PID" 10) && zc_wait_service srv Mandos "$port" 10 >/dev/null; then
	ok "server with --interface vsrv is announced on port $port"
	sleep 1 # both interfaces would have shown it by now
	check "announced on vsrv only" \
		test "$(zc_services srv | awk -F'|' '$1 == "Mandos" { print $3 }' | sort -u)" = vsrv
	zc_expect_secret "mandos-client on vcli gets alpha's secret from the --interface server" \
		cli vcli alpha 30
else
	not_ok "server with --interface vsrv is announced"
fi
stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0

# -------------------------------------------------- (3) --no-zeroconf: no Avahi
PORT=$(free_port)
zc_start_mandos srv --no-zeroconf --port "$PORT"
if zc_wait_port "$MANDOS_PID" 10 >/dev/null; then
	ok "server with --no-zeroconf listens on port $PORT"
	sleep 2
	check "--no-zeroconf: nothing is announced" zc_gone srv Mandos 1
	check "--no-zeroconf: the server has no connection to the system bus" \
		zc_not_on_bus srv "$MANDOS_PID"
	check "--no-zeroconf: no Zeroconf log lines" test "$(log_count Zeroconf)" -eq 0
else
	not_ok "server with --no-zeroconf listens on port $PORT"
fi
stop_mandos TERM

finish
