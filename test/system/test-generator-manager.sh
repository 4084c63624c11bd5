#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317,SC2015 # functions called by traps and wait_until; A && B || bail
#
# mandos.conf's port under socket activation, through mandos-generator, in
# a real systemd manager (lib.sh). The build is installed with "meson
# install --destdir"; the manager runs the installed generator directory
# (and no other generator) and loads what it writes, and gets the two
# units as meson installed them, with the installed tree over its /usr.
#
#  1. Booted with the host's mandos.conf (Debian's, which sets no port):
#     the generator writes nothing, mandos.socket listens on the unit's
#     9876.
#  2. "port = N" in the namespace's /etc/mandos/mandos.conf, then
#     "systemctl daemon-reload": the generator's drop-in is there,
#     mandos.socket listens on N (and not on 9876), and the real
#     mandos-client is served at 127.0.0.1:N and [::1]:N by the
#     socket-activated server, which logs no mismatch with mandos.conf.

# shellcheck source=../integration/lib.sh
. "${TEST_DIR:?TEST_DIR (test/integration) is not set}/lib.sh"
# shellcheck source=lib.sh
. "${SYSTEM_TEST_DIR:-$(cd "$(dirname "$0")" && pwd)}/lib.sh"

sd_require
require_common
require_prog meson
getent passwd _mandos >/dev/null || skip "needs the user _mandos (the Debian package mandos makes it)"

DROPIN=/run/systemd/generator/mandos.socket.d/50-mandos-conf.conf
# Any port but the unit's: the manager has a network namespace of its own.
PORT=$(free_port)
[ "$PORT" = 9876 ] && PORT=$((PORT + 1))

sd_meson_install
if [ -n "$GENERATOR_PATH" ]; then
	ok "meson installs the generator: $GENERATOR_PATH"
	SD_GENERATOR_PATH="$DESTDIR$(dirname "$GENERATOR_PATH")"
else
	not_ok "meson installs a generator into a system-generators directory"
	SD_GENERATOR_PATH="$SCRATCH/no-generators"
	mkdir -p "$SD_GENERATOR_PATH"
fi
export SD_GENERATOR_PATH

ensure_keys alpha
ensure_keys bravo
CONF="$SCRATCH/etc-mandos"
mkdir -p "$CONF"
# No Zeroconf (no avahi-daemon in here) and no D-Bus: only the socket matters.
printf '[DEFAULT]\nport = %s\nzeroconf = False\nuse_dbus = False\n' "$PORT" >"$CONF/mandos.conf"
{
	client_section alpha 'checker = true'
	echo
	client_section bravo 'checker = true'
} >"$CONF/clients.conf"

sd_init
cp "$DESTDIR$SERVICE_PATH" "$DESTDIR$SOCKET_PATH" "$SD_DIR/units/"
sd_boot 20

sd_client_in_namespace

sd_private_tmp "$SCRATCH" "$BUILD_DIR" "$KEY_CACHE" || bail "cannot give the namespace a /tmp of its own"
sd_overlay /usr "$DESTDIR/usr" || bail "cannot lay the installed tree over the namespace's /usr"
[ -n "$SYSUSERS_PATH" ] && sd_run systemd-sysusers "$SYSUSERS_PATH"
[ -n "$TMPFILES_PATH" ] && sd_run systemd-tmpfiles --create "$TMPFILES_PATH"

journal() { sd_run journalctl --no-pager -u mandos.service "$@" 2>/dev/null; }
listen() { sd_prop mandos.socket Listen; }
# listening PORT: a listening TCP socket on PORT in the namespace.
listening() {
	local hex
	hex=$(printf '%04X' "$1")
	sd_run cat /proc/net/tcp6 /proc/net/tcp 2>/dev/null |
		awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }'
}

# ------------------------------------------------ 1. nothing set: 9876
out=$(sd_run cat "$DROPIN" 2>&1)
check "booted with a mandos.conf that sets no port: no drop-in ($DROPIN: ${out:0:80})" \
	test "$(sd_run test -e "$DROPIN" && echo yes)" != yes
out=$(listen)
check "mandos.socket listens on the unit's port ($out)" test "$out" = "[::]:9876 (Stream)"

# ------------------------------- 2. port = N, daemon-reload: N, served
sd_run install -D -o root -g root -m 0600 "$CONF/mandos.conf" /etc/mandos/mandos.conf &&
	sd_run install -D -o root -g root -m 0600 "$CONF/clients.conf" /etc/mandos/clients.conf ||
	bail "cannot write the namespace's /etc/mandos"
sd_run /bin/sh -c 'echo "DAEMON_ARGS=\"\"" >/etc/default/mandos'
sd_reload
out=$(sd_run cat "$DROPIN" 2>/dev/null | grep -Ev '^(#|$)' | tr '\n' '|')
check "after port = $PORT and daemon-reload, the generator's drop-in is there ($out)" \
	test "$out" = "[Socket]|ListenStream=|ListenStream=$PORT|"
out=$(listen)
check "mandos.socket's Listen is now [::]:$PORT ($out)" test "$out" = "[::]:$PORT (Stream)"
out=$(sd_run systemctl status --no-pager mandos.socket 2>&1 | grep -A1 'Drop-In' | tr -s ' \n' ' ')
diag "systemctl status mandos.socket: $out"

if sd_run systemctl start mandos.socket mandos.service; then
	ok "systemctl start mandos.socket mandos.service"
else
	not_ok "systemctl start mandos.socket mandos.service ($(sd_run systemctl status --no-pager mandos.socket mandos.service 2>&1 | tail -n 8 | tr '\n' '|'))"
fi
wait_until 5 listening "$PORT"
check "a socket listens on port $PORT in the manager's namespace" listening "$PORT"
check "... and none on 9876" eval '! listening 9876'
expect_secret "the real mandos-client at 127.0.0.1:$PORT is served" alpha "127.0.0.1:$PORT" 30
expect_secret "the real mandos-client at [::1]:$PORT is served" bravo "[::1]:$PORT" 15
out=$(sd_prop mandos.service ActiveState)
check "mandos.service is active ($out)" test "$out" = active
out=$(journal -o cat | grep -F 'The socket systemd passed' | head -n 2 | tr '\n' '|')
check "the server finds the socket matches mandos.conf (no ERROR: ${out:-none})" test -z "$out"

if [ "$_fail_count" -gt 0 ]; then
	journal -o short-precise | tail -n 20 | sed 's/^/#   /'
	sd_dump_journal "$SCRATCH/namespace-journal.log"
fi
finish
