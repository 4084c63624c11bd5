#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2119,SC2317 # helpers take optional args; functions called indirectly
#
# A hung avahi-daemon (stopped with SIGSTOP, so that it holds its bus name
# and never answers) does not hold up the server (README.md, Security):
# each avahi-client call waits for it up to 25 s, and those calls run on
# a thread of their own. The server starts while the daemon is stopped,
# under a watchdog (WATCHDOG_USEC of 3 s, NOTIFY_SOCKET read here): it
# says READY=1 and pings the watchdog on time, and the real mandos-client
# (given the address) gets its secret within 3 s, again and again, for the
# 10 s the daemon stays stopped. Once continued, the daemon announces the
# service, and the real mandos-client finds it by browsing.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "${TEST_DIR:-$(dirname "$0")}/lib-zeroconf.sh"
require_zeroconf

zc_server_site alpha
zc_start_avahi srv
AVAHI=${ZC_AVAHI_PID[srv]}
kill -STOP "$AVAHI"
check "avahi-daemon is stopped" test "$(proc_state "$AVAHI")" = T

# The service manager's side of sd_notify(3): each message, with its time.
NOTIFY="$SCRATCH/notify.sock"
NOTES="$SCRATCH/notify.log"
setsid "$PY" -c '
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        for line in s.recv(4096).decode(errors="replace").splitlines():
            f.write("%.3f %s\n" % (time.time(), line))
' "$NOTIFY" "$NOTES" </dev/null >/dev/null 2>&1 &
remember_pid $!
wait_until 5 test -S "$NOTIFY" || bail "the notify socket did not appear"

STATEDIR=$(new_statedir)
started=$(date +%s.%N)
start_mandos_cmd ip netns exec "${ZC_NS[srv]}" \
	env DBUS_SYSTEM_BUS_ADDRESS="${ZC_BUS[srv]}" NOTIFY_SOCKET="$NOTIFY" WATCHDOG_USEC=3000000 \
	"$MANDOS" --foreground --debug --no-dbus --configdir "$CONFDIR" --statedir "$STATEDIR"
port=$(zc_wait_port "$MANDOS_PID" 10) || bail "the server does not listen"

FETCH_MAX=$(vg_scale 3)
# fetch_direct: the real mandos-client in srv, given the address; prints the
# seconds it took, or fails.
fetch_direct() {
	local t0 got
	client_cmd "$FETCH_MAX" alpha alpha --connect="[::1]:$port" --interface=none
	t0=$(date +%s.%N)
	got=$(ip netns exec "${ZC_NS[srv]}" "${CLIENT_CMD[@]}" </dev/null 2>>"$SCRATCH/client.log")
	[ "$got" = "$(secret_of alpha)" ] || return 1
	"$PY" -c 'import sys, time; print("%.2f" % (time.time() - float(sys.argv[1])))' "$t0"
}

n=0 good=0
until_t=$(($(date +%s) + 10))
while [ "$(date +%s)" -lt "$until_t" ] && [ $n -lt 20 ]; do
	n=$((n + 1))
	if took=$(fetch_direct); then
		good=$((good + 1))
		diag "fetch $n with avahi-daemon stopped: ${took}s"
	else
		diag "fetch $n with avahi-daemon stopped: no secret within $FETCH_MAX s"
	fi
	sleep 1
done
check "with avahi-daemon stopped, every fetch ($good of $n) got the secret within $FETCH_MAX s" test "$good" -eq "$n" -a "$n" -ge 3
check "avahi-daemon was stopped all along" test "$(proc_state "$AVAHI")" = T
stopped_until=$(date +%s.%N)

# watchdog_ok: READY=1 within 3 s of the start (valgrind's start-up: 12 s),
# and WATCHDOG=1 never more than WATCHDOG_USEC apart from then until
# avahi-daemon was continued.
watchdog_ok() {
	"$PY" - "$NOTES" "$started" "$stopped_until" "$(vg_scale 3)" <<'PY'
import sys
notes, start, end, ready_max = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
lines = [l.split(" ", 1) for l in open(notes).read().splitlines()]
ready = [float(t) for t, m in lines if m == "READY=1"]
pings = [float(t) for t, m in lines if m == "WATCHDOG=1"]
if not ready or ready[0] - start > ready_max:
    print("# READY=1 %s" % ("%.1f s after the start" % (ready[0] - start) if ready else "never came"))
    sys.exit(1)
times = [ready[0]] + [t for t in pings if t > ready[0]] + [end]
gap = max(b - a for a, b in zip(times, times[1:]))
print("# READY=1 after %.1f s; %d pings; the longest gap %.1f s" % (ready[0] - start, len(pings), gap))
sys.exit(gap > 3)
PY
}
check "the watchdog (3 s) is pinged on time while avahi-daemon is stopped" watchdog_ok

kill -CONT "$AVAHI"
zc_check_service "once avahi-daemon is continued, the service is announced" srv Mandos "$port" 15
zc_expect_secret "alpha finds the server by browsing and gets its secret" cli vcli alpha 30

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
