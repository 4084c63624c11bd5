#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A wall clock stepped forward (NTP correcting a bad clock at boot) by far
# more than a client's timeout expires no client: the server's timers run on
# CLOCK_BOOTTIME (src/deadline.h). The step is made for the server process
# alone: this machine's clock is shared and is never set, and a time
# namespace cannot offset CLOCK_REALTIME. clock-step.so (clock-step.c),
# preloaded into the server, adds the seconds in a file to CLOCK_REALTIME
# and leaves the other clocks be. On a server whose timers are on the wall
# clock, the step expires the client at the event loop's next wake-up.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
[ -r "${CLOCK_STEP_LIB:-/nonexistent}" ] || bail "CLOCK_STEP_LIB is not set (test/meson.build builds it)"
# The server drops privileges: its copy must be readable by that user.
cp "$CLOCK_STEP_LIB" "$SCRATCH/clock-step.so"
chmod 0755 "$SCRATCH/clock-step.so"

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true' 'interval = PT30S' 'timeout = PT1M')"
PORT=$(free_port)
STATEDIR=$(new_statedir)
STEP="$SCRATCH/clock-step"
echo 0 >"$STEP"
chmod 0644 "$STEP"

# (A sanitizer build's runtime wants to come first; this library is harmless.)
start_mandos_cmd env LD_PRELOAD="$SCRATCH/clock-step.so" MANDOS_CLOCK_STEP_FILE="$STEP" \
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
	"$MANDOS" --foreground --debug --no-dbus --no-zeroconf \
	--configdir "$CONFDIR" --statedir "$STATEDIR" --port "$PORT"
wait_listening "$PORT" "$(vg_scale 10)" || bail "server does not start"
expect_secret "alpha is served before the step" alpha "[::1]:$PORT"

# The wall clock, as the server sees it, steps two days forward.
echo $((2 * 24 * 3600)) >"$STEP"
# Wake the server's event loop (it looks at due timers on every wake-up).
for _ in 1 2 3; do
	(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
	sleep "$(vg_scale 1)"
done
check "the server saw the step (its log is dated two days on)" \
	grep -qF "$(date -d '+2 days' +%Y-%m-%d)" "$MANDOS_LOG"
check "no client expired on the step" test "$(log_count 'has expired and is disabled')" -eq 0
expect_secret "alpha is still served after the step" alpha "[::1]:$PORT"
check "alpha was never disabled" test "$(log_count 'Client alpha is disabled')" -eq 0
check "the server is still running" alive "$MANDOS_PID"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
