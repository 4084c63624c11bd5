# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck shell=bash
#
# Zeroconf test harness: sourced by test-zeroconf-*.sh after lib.sh.
#
# A "site" is a network namespace of our own with, when asked, its own
# private system bus (a dbus-daemon in the scratch directory, with avahi's
# D-Bus policy) and its own avahi-daemon. Servers run in a site; the real
# mandos-client runs in another namespace, joined by veth pairs, and finds
# them by mDNS alone (it has its own mDNS stack).
#
# Only addresses inside the namespaces made here receive traffic (IPv6
# link-local). Every process is started with setsid and killed by PID at
# the end; every namespace is deleted at the end. avahi-daemon writes
# /run/avahi-daemon/pid, so each one gets a private /run (a tmpfs in a
# mount namespace of its own), and the tests also take a machine-wide lock.

ZC_LOCK_FILE=${ZC_LOCK_FILE:-/run/lock/mandos-test-zeroconf.lock}
ZC_PREFIX="mzc$$"
ZC_NETNS=()
ZC_SEQ=0
declare -A ZC_NS ZC_BUS ZC_BUS_PID ZC_IFACES ZC_AVAHI_PID

# require_zeroconf: skip unless everything the Zeroconf tests need is here;
# then take the lock and arrange for the namespaces to be deleted.
require_zeroconf() {
	require_common
	require_prog ip dbus-daemon avahi-daemon avahi-browse busctl unshare mount sysctl mountpoint
	require_root_mount
	[ -f /usr/share/dbus-1/system.d/avahi-dbus.conf ] ||
		skip "needs avahi's D-Bus policy /usr/share/dbus-1/system.d/avahi-dbus.conf"
	if ! ip netns add "$ZC_PREFIX-probe" 2>/dev/null; then
		skip "cannot create network namespaces"
	fi
	ip netns del "$ZC_PREFIX-probe"
	trap _zc_cleanup EXIT

	local lock_dir
	lock_dir=$(dirname "$ZC_LOCK_FILE")
	[ -d "$lock_dir" ] && [ -w "$lock_dir" ] || ZC_LOCK_FILE=/tmp/mandos-test-zeroconf.lock
	exec {ZC_LOCK_FD}>>"$ZC_LOCK_FILE" || bail "cannot open $ZC_LOCK_FILE"
	flock -w 900 "$ZC_LOCK_FD" || bail "waited 15 minutes for $ZC_LOCK_FILE"
	mkdir -p "$SCRATCH/no-hooks"
}

# Namespaces go first (processes inside keep them alive until lib.sh's
# _cleanup kills them by PID).
_zc_cleanup() {
	local rc=$? ns
	for ns in "${ZC_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	(exit "$rc")
	_cleanup
}

# ------------------------------------------------------------- namespaces

# zc_netns SITE: make network namespace "$ZC_PREFIX-SITE" (lo up, no DAD).
zc_netns() {
	local site=$1 ns="$ZC_PREFIX-$1"
	ip netns add "$ns" || bail "ip netns add $ns failed"
	ZC_NETNS+=("$ns")
	ZC_NS[$site]=$ns
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 || bail "sysctl in $ns failed"
	ip -n "$ns" link set lo up || bail "lo up in $ns failed"
}

# zc_in SITE CMD...: run CMD in SITE's namespace (with its bus, if any).
zc_in() {
	local site=$1
	shift
	ip netns exec "${ZC_NS[$site]}" env ${ZC_BUS[$site]:+DBUS_SYSTEM_BUS_ADDRESS="${ZC_BUS[$site]}"} "$@"
}

# zc_link SITE_A IF_A SITE_B IF_B: a veth pair between two sites, both ends up.
zc_link() {
	ip link add "$2" netns "${ZC_NS[$1]}" type veth peer name "$4" netns "${ZC_NS[$3]}" ||
		bail "cannot create veth pair $2/$4"
	ip -n "${ZC_NS[$1]}" link set "$2" up || bail "$2 up failed"
	ip -n "${ZC_NS[$3]}" link set "$4" up || bail "$4 up failed"
	ZC_IFACES[$1]="${ZC_IFACES[$1]:+${ZC_IFACES[$1]},}$2"
	ZC_IFACES[$3]="${ZC_IFACES[$3]:+${ZC_IFACES[$3]},}$4"
}

# zc_bridge SITE BRIDGE IF...: a bridge in SITE over its interfaces IF...
# (no STP delay, no multicast snooping: mDNS is flooded to every port).
zc_bridge() {
	local site=$1 br=$2 ns="${ZC_NS[$1]}" i
	shift 2
	ip -n "$ns" link add "$br" type bridge forward_delay 0 stp_state 0 mcast_snooping 0 ||
		bail "cannot create bridge $br"
	for i in "$@"; do
		ip -n "$ns" link set "$i" master "$br" || bail "cannot add $i to $br"
	done
	ip -n "$ns" link set "$br" up || bail "$br up failed"
}

# zc_wait_link_local SITE IF [SECONDS]: wait for IF's IPv6 link-local address.
zc_wait_link_local() {
	wait_until "${3:-10}" zc_has_link_local "$1" "$2" ||
		bail "no IPv6 link-local address on $2 in ${ZC_NS[$1]}"
}

# zc_has_link_local SITE IF: true if IF in SITE has its link-local address.
zc_has_link_local() {
	ip -n "${ZC_NS[$1]}" -6 addr show dev "$2" scope link 2>/dev/null | grep -q 'inet6 fe80'
}

# zc_two_sites: namespaces srv and cli, linked by vsrv <-> vcli, each end
# with its link-local address.
zc_two_sites() {
	zc_netns srv
	zc_netns cli
	zc_link srv vsrv cli vcli
	zc_wait_link_local srv vsrv
	zc_wait_link_local cli vcli
}

# zc_server_site NAME...: what most tests start from: clients.conf with
# NAMEs (config_with), the sites srv and cli (zc_two_sites) and srv's bus
# (zc_bus). Starting avahi-daemon (zc_start_avahi srv) is the test's.
zc_server_site() {
	config_with "$@"
	zc_two_sites
	zc_bus srv
}

# ----------------------------------------------------------- bus and avahi

# zc_bus SITE: start a private system bus for SITE (policy as Debian's
# system bus, plus avahi's policy file).
zc_bus() {
	local site=$1 dir="$SCRATCH/$1-bus"
	mkdir -p "$dir/system.d"
	chmod 0755 "$dir" "$dir/system.d"
	write_bus_config "$dir" /usr/share/dbus-1/system.d
	run_bus "$dir" "$SCRATCH/$site-bus.log"
	ZC_BUS[$site]="unix:path=$dir/system_bus_socket"
	ZC_BUS_PID[$site]=$BUS_PID
}

# zc_stop_bus SITE: stop SITE's bus; its address stays, for zc_bus to reuse.
zc_stop_bus() {
	kill_pid "${ZC_BUS_PID[$1]}"
	rm -f "$SCRATCH/$1-bus/system_bus_socket"
}

# zc_avahi_conf SITE: write SITE's avahi-daemon.conf (its interfaces only).
zc_avahi_conf() {
	local site=$1
	cat >"$SCRATCH/$site-avahi.conf" <<-EOF
	[server]
	host-name=mandos-test-$site
	domain-name=local
	use-ipv4=yes
	use-ipv6=yes
	allow-interfaces=${ZC_IFACES[$site]}
	ratelimit-interval-usec=1000000
	ratelimit-burst=1000
	enable-dbus=yes

	[wide-area]
	enable-wide-area=no

	[publish]
	publish-hinfo=no
	publish-workstation=no

	[reflector]
	[rlimits]
	EOF
}

# zc_start_avahi SITE: start avahi-daemon in SITE (after its links are made)
# and wait until it has started up.
zc_start_avahi() {
	local site=$1 pid log
	[ -n "${ZC_BUS[$site]:-}" ] || bail "zc_start_avahi $site: no bus"
	zc_avahi_conf "$site"
	ZC_SEQ=$((ZC_SEQ + 1))
	log="$SCRATCH/$site-avahi.$ZC_SEQ.log"
	# ip netns exec, unshare and sh all exec: $! is avahi-daemon's PID.
	setsid ip netns exec "${ZC_NS[$site]}" env DBUS_SYSTEM_BUS_ADDRESS="${ZC_BUS[$site]}" \
		unshare --mount --propagation private \
		sh -c 'mount -t tmpfs -o mode=0755,size=1m tmpfs /run && exec "$@"' sh \
		avahi-daemon -f "$SCRATCH/$site-avahi.conf" --no-drop-root --no-chroot --no-rlimits \
		</dev/null >"$log" 2>&1 &
	pid=$!
	remember_pid "$pid"
	ZC_AVAHI_PID[$site]=$pid
	wait_until 10 eval 'grep -q "Server startup complete" "$log" 2>/dev/null || ! alive "$pid"'
	grep -q 'Server startup complete' "$log" 2>/dev/null && return 0
	cat "$log" >&2
	bail "avahi-daemon in $site did not start"
}

# zc_stop_avahi SITE [SIGNAL]: stop SITE's avahi-daemon (default TERM) and
# wait until it is gone.
zc_stop_avahi() {
	local sig=${2:-TERM} pid=${ZC_AVAHI_PID[$1]}
	kill -"$sig" "$pid" 2>/dev/null
	wait_until 10 exited "$pid" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# ------------------------------------------------------------------ server

# zc_start_mandos SITE ARGS...: start the server in SITE, Zeroconf on,
# D-Bus off (only avahi-client uses the bus), on CONFDIR and a new
# STATEDIR, with ARGS. Sets MANDOS_PID and MANDOS_LOG (lib.sh).
zc_start_mandos() {
	local site=$1
	shift
	[ -n "${CONFDIR:-}" ] || bail "zc_start_mandos: CONFDIR not set"
	STATEDIR=$(new_statedir)
	start_mandos_cmd ip netns exec "${ZC_NS[$site]}" \
		env DBUS_SYSTEM_BUS_ADDRESS="${ZC_BUS[$site]:-unix:path=$SCRATCH/no-such-bus}" \
		"$MANDOS" --foreground --debug --no-dbus \
		--configdir "$CONFDIR" --statedir "$STATEDIR" "$@"
}

# zc_wait_port PID [SECONDS]: wait until PID listens; print the port(s).
zc_wait_port() {
	local pid=$1 max=${2:-10} ports=
	wait_until "$max" eval 'ports=$(listening_ports_of "$pid"); [ -n "$ports" ] || ! alive "$pid"'
	[ -n "$ports" ] && alive "$pid" || return 1
	echo "$ports"
}

# zc_on_bus SITE PID: true if process PID has a connection to SITE's bus.
zc_on_bus() {
	busctl --address="${ZC_BUS[$1]}" list --no-pager --no-legend 2>/dev/null |
		awk -v pid="$2" '$1 ~ /^:/ && $2 == pid { f = 1 } END { exit !f }'
}
zc_not_on_bus() { ! zc_on_bus "$@"; }

# ---------------------------------------------------------------- browsing

# zc_services SITE: browse _mandos._tcp with SITE's avahi-daemon and print
# each resolved service as "NAME|PROTOCOL|INTERFACE|PORT|TXT" (names
# unescaped), sorted.
zc_services() {
	zc_in "$1" timeout 10 avahi-browse --resolve --parsable --terminate \
		--no-db-lookup _mandos._tcp 2>/dev/null |
		"$PY" -c '
import re, sys
for line in sys.stdin:
    f = line.rstrip("\n").split(";")
    if f[0] != "=" or len(f) < 10:
        continue
    # avahi-browse escapes as avahi_escape_label: \DDD (decimal) and \X
    name = re.sub(r"\\(\d{3}|.)",
                  lambda m: chr(int(m.group(1))) if len(m.group(1)) == 3 else m.group(1),
                  f[3])
    print("|".join([name, f[2], f[1], f[8], ";".join(f[9:])]))
' | LC_ALL=C sort -u
}

# zc_wait_service SITE NAME [PORT] [SECONDS]: wait (default 10 s) until SITE
# resolves service NAME (on PORT, if given). Prints how long it took.
zc_wait_service() {
	local start ms
	start=$(now_ms)
	wait_until "${4:-10}" zc_resolves "$1" "$2" "${3:-}" || return 1
	ms=$(($(now_ms) - start))
	printf '%d.%d\n' $((ms / 1000)) $((ms % 1000 / 100))
}

# zc_check_service DESC SITE NAME [PORT] [SECONDS]: ok "DESC (after Ns)"
# if zc_wait_service SITE NAME PORT SECONDS finds it, else not_ok "DESC".
zc_check_service() {
	local desc=$1 took
	shift
	if took=$(zc_wait_service "$@"); then
		ok "$desc (after ${took}s)"
	else
		not_ok "$desc"
	fi
}

# zc_resolves SITE NAME [PORT]: true if SITE resolves service NAME (on PORT).
zc_resolves() {
	zc_services "$1" | awk -F'|' -v n="$2" -v p="${3:-}" '$1 == n && (p == "" || $4 == p) { f = 1 } END { exit !f }'
}

# zc_gone SITE NAME [SECONDS]: wait (default 5 s) until SITE no longer
# resolves service NAME.
zc_gone() {
	local site=$1 name=$2
	wait_until "${3:-5}" eval '! zc_resolves "$site" "$name"'
}

# ------------------------------------------------------------------ client

# zc_fetch SITE IFACE NAME [TIMEOUT]: run the real mandos-client in SITE,
# without --connect (it browses for _mandos._tcp on IFACE by itself), with
# NAME's keys, for at most TIMEOUT (default 30) seconds; print what it
# printed (the secret). Its stderr goes to $SCRATCH/client.log.
zc_fetch() {
	local site=$1 iface=$2 name=$3 t=${4:-30}
	client_cmd "$t" "$name" "$name" --interface="$iface" --delay=1 --network-hook-dir="$SCRATCH/no-hooks"
	echo "=== zc_fetch $name in $site on $iface (timeout $t s) at $(date +%T.%N)" >>"$SCRATCH/client.log"
	ip netns exec "${ZC_NS[$site]}" "${CLIENT_CMD[@]}" </dev/null 2>>"$SCRATCH/client.log"
}

# zc_expect_secret DESC SITE IFACE NAME [TIMEOUT]: NAME finds a server by
# itself and gets exactly its secret.
zc_expect_secret() {
	local desc=$1 got
	got=$(zc_fetch "$2" "$3" "$4" "${5:-30}")
	if [ "$got" = "$(secret_of "$4")" ]; then
		ok "$desc"
	else
		not_ok "$desc (got ${#got} bytes: '${got:0:80}')"
	fi
}
