#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317 # functions called indirectly
#
# mandos-generator (src/mandos-generator.c) run by hand on temporary
# directories, as systemd runs it (three output directories), with
# MANDOS_GENERATOR_CONFIGDIR pointing at a scratch mandos.conf:
#  - port only: ListenStream= cleared, then the port (dual stack);
#  - address and port, IPv4 and IPv6 ([::1]:PORT): the drop-in's address
#    is one systemd accepts (systemd-analyze verify), and the real server,
#    socket-activated on exactly that address, serves the real
#    mandos-client there and logs no mismatch with mandos.conf;
#  - use_ipv6 = false: IPv4 only (0.0.0.0:PORT);
#  - interface: BindToDevice=, the unit's ListenStream= kept;
#  - none of them: nothing written;
#  - a bad value: nothing written, exit status 0, a message naming the
#    file and the key.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog systemd-socket-activate systemd-analyze
[ -x "${GENERATOR:-}" ] || bail "GENERATOR is not set (path to mandos-generator)"
UNIT_SOCKET="$TEST_DIR/../../units/mandos.socket"
[ -f "$UNIT_SOCKET" ] || bail "no $UNIT_SOCKET"

ensure_keys alpha
DROPIN=mandos.socket.d/50-mandos-conf.conf

# gen NAME CONF-LINES: write a mandos.conf of CONF-LINES (and a clients.conf
# with alpha) in $SCRATCH/NAME/conf, run the generator on
# $SCRATCH/NAME/{normal,early,late}; its exit status in GEN_RC, its
# messages in $SCRATCH/NAME/gen.err; OUT is the normal directory.
gen() {
	local name=$1
	CONF="$SCRATCH/$name/conf"
	OUT="$SCRATCH/$name/normal"
	MANDOS_CONF_EXTRA=$2 write_config "$CONF" "$(client_section alpha)"
	mkdir -p "$OUT" "$SCRATCH/$name/early" "$SCRATCH/$name/late"
	MANDOS_GENERATOR_CONFIGDIR="$CONF" "$GENERATOR" "$OUT" "$SCRATCH/$name/early" "$SCRATCH/$name/late" \
		>"$SCRATCH/$name/gen.out" 2>"$SCRATCH/$name/gen.err"
	GEN_RC=$?
}

# listen_lines: the ListenStream= lines of the drop-in, joined by '|'.
listen_lines() { grep '^ListenStream=' "$OUT/$DROPIN" 2>/dev/null | tr '\n' '|'; }

# verify_dropin: systemd parses mandos.socket with the drop-in, without a
# complaint about it.
verify_dropin() {
	local dir out
	dir="$SCRATCH/verify.$RANDOM"
	mkdir -p "$dir/mandos.socket.d"
	cp "$UNIT_SOCKET" "$dir/"
	cp "$OUT/$DROPIN" "$dir/mandos.socket.d/"
	out=$(cd "$dir" && systemd-analyze verify "$dir/mandos.socket" 2>&1 |
		grep -E 'mandos\.socket|50-mandos-conf')
	if [ -z "$out" ]; then
		ok "systemd-analyze verify: mandos.socket with the drop-in is clean"
	else
		not_ok "systemd-analyze verify: mandos.socket with the drop-in is clean ($(tr '\n' '|' <<<"$out"))"
	fi
}

# serve_on SPEC ADDRESS:PORT: the server, socket-activated on SPEC (the
# drop-in's ListenStream=) with the generator's mandos.conf, serves alpha
# at ADDRESS:PORT and logs nothing about a mismatch.
serve_on() {
	local spec=$1 addr=$2 port=${2##*:}
	STATEDIR=$(new_statedir)
	start_mandos_cmd systemd-socket-activate "${SOCKET_ACTIVATE_ENV[@]}" -l "$spec" --fdname=mandos \
		"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
		--configdir "$CONF" --statedir "$STATEDIR"
	if wait_listening "$port" 10; then
		expect_secret "the server activated on $spec serves the real mandos-client at $addr" alpha "$addr" 15
		if grep -q 'The socket systemd passed' "$MANDOS_LOG"; then
			not_ok "... and finds the socket matches mandos.conf ($(grep 'The socket systemd passed' "$MANDOS_LOG" | head -n 2 | tr '\n' '|'))"
		else
			ok "... and finds the socket matches mandos.conf (no ERROR about it)"
		fi
		stop_mandos TERM
	else
		not_ok "systemd-socket-activate listens on $spec"
	fi
}

# ---------------------------------------------------------------- port only
P=$(free_port)
gen port "port = $P"
check "port only: exit status 0 (got $GEN_RC)" test "$GEN_RC" = 0
out=$(listen_lines)
check "port only: ListenStream= cleared, then $P ($out)" test "$out" = "ListenStream=|ListenStream=$P|"
out=$(grep -c '^BindToDevice=' "$OUT/$DROPIN" 2>/dev/null)
check "port only: no BindToDevice= (${out:-no file})" test "$out" = 0
[ -f "$OUT/$DROPIN" ] && verify_dropin
out=$(find "$SCRATCH/port/early" "$SCRATCH/port/late" -mindepth 1 | tr '\n' ' ')
check "port only: nothing in the early and late directories (${out:-empty})" test -z "$out"

# ------------------------------------------------------- address+port, IPv4
P=$(free_port)
gen ipv4 "address = 127.0.0.1
port = $P"
out=$(listen_lines)
check "address 127.0.0.1, port $P: ListenStream=127.0.0.1:$P ($out)" \
	test "$out" = "ListenStream=|ListenStream=127.0.0.1:$P|"
if [ -f "$OUT/$DROPIN" ]; then
	verify_dropin
	serve_on "127.0.0.1:$P" "127.0.0.1:$P"
fi

# ------------------------------------------------------- address+port, IPv6
P=$(free_port)
gen ipv6 "address = ::1
port = $P"
out=$(listen_lines)
check "address ::1, port $P: ListenStream=[::1]:$P ($out)" \
	test "$out" = "ListenStream=|ListenStream=[::1]:$P|"
if [ -f "$OUT/$DROPIN" ]; then
	verify_dropin
	serve_on "[::1]:$P" "[::1]:$P"
fi

# ----------------------------------------------------------- IPv4 only
gen noipv6 "use_ipv6 = false
port = 9999"
out=$(listen_lines)
check "use_ipv6 = false, port 9999: ListenStream=0.0.0.0:9999 ($out)" \
	test "$out" = "ListenStream=|ListenStream=0.0.0.0:9999|"

# ----------------------------------------------------------- interface
gen interface "interface = lo"
out=$(grep -E '^(ListenStream|BindToDevice)=' "$OUT/$DROPIN" 2>/dev/null | tr '\n' '|')
check "interface lo: BindToDevice=lo, the unit's ListenStream= kept ($out)" test "$out" = "BindToDevice=lo|"
[ -f "$OUT/$DROPIN" ] && verify_dropin

# ---------------------------------------------------------- nothing set
gen none ""
out=$(find "$SCRATCH/none/normal" "$SCRATCH/none/early" "$SCRATCH/none/late" -mindepth 1 | tr '\n' ' ')
check "nothing set: exit 0 (got $GEN_RC), nothing written (${out:-nothing}), silent ($(head -c 200 "$SCRATCH/none/gen.err"))" \
	test "$GEN_RC" = 0 -a -z "$out" -a ! -s "$SCRATCH/none/gen.err"

# ------------------------------------------------------------ bad values
gen badport "port = 70000"
out=$(find "$SCRATCH/badport/normal" -mindepth 1 | tr '\n' ' ')
check "port = 70000: exit status 0 (got $GEN_RC) and nothing written (${out:-nothing})" \
	test "$GEN_RC" = 0 -a -z "$out"
err=$(tr '\n' '|' <"$SCRATCH/badport/gen.err")
if grep -qF "$CONF/mandos.conf: [DEFAULT] port:" "$SCRATCH/badport/gen.err"; then
	ok "port = 70000: the message names the file and the key ($err)"
else
	not_ok "port = 70000: a message naming $CONF/mandos.conf and port (got: ${err:-nothing})"
fi
gen badaddr "address = ::1
use_ipv6 = no
port = 1234"
out=$(find "$SCRATCH/badaddr/normal" -mindepth 1 | tr '\n' ' ')
err=$(tr '\n' '|' <"$SCRATCH/badaddr/gen.err")
check "an IPv6 address with use_ipv6 = no: exit 0 (got $GEN_RC), nothing written (${out:-nothing}), '$CONF/mandos.conf: [DEFAULT] address:' said ($err)" \
	grep -qF "$CONF/mandos.conf: [DEFAULT] address:" "$SCRATCH/badaddr/gen.err"
check "... nothing written" test "$GEN_RC" = 0 -a -z "$out"

finish
