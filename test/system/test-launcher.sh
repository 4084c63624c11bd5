#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The launcher refuses to put into a checker scope any process but an
# unreaped child of the server running as the server's user
# (src/launcher.h). launcher-client plays a compromised server: it forks
# the real launcher, drops to _mandos, and asks, over the real channel,
# for scopes for PID 1, the launcher itself, itself, another user's process
# (the bus daemon), a child that stayed root, a zombie child, a PID that
# does not exist — and, as the
# control, for a checker-like child of its own. Under a real systemd manager
# (a namespace, lib.sh): every request but the last is refused and logged,
# nothing is attached, and the one scope goes when the launcher does.

# shellcheck source=../integration/lib.sh
. "${TEST_DIR:?TEST_DIR (test/integration) is not set}/lib.sh"
# shellcheck source=lib.sh
. "${SYSTEM_TEST_DIR:-$(cd "$(dirname "$0")" && pwd)}/lib.sh"

sd_require
[ -x "${LAUNCHER_CLIENT:-}" ] || bail "LAUNCHER_CLIENT is not set (test/meson.build builds it)"
getent passwd _mandos >/dev/null || getent passwd nobody >/dev/null || skip "needs the user _mandos or nobody"

mkdir -p "$SCRATCH/conf"
sd_init
sd_boot 20

OUT="$SCRATCH/client.out"
ERR="$SCRATCH/client.err"
mkfifo "$SCRATCH/go"
# The client waits for a line on the FIFO before it exits; keep it open.
other=$(sd_main_pid dbus.service)
[ -n "$other" ] && [ "$other" != 0 ] && [ "$(sd_uid_of "$other")" != 0 ] || bail "no bus daemon of another user ($other)"
setsid nsenter -t "$SD_PID1" -a -r -w "$LAUNCHER_CLIENT" "$SCRATCH/conf" "$other" <"$SCRATCH/go" >"$OUT" 2>"$ERR" &
client=$!
remember_pid "$client"
exec {go}>"$SCRATCH/go"

# shellcheck disable=SC2317 # called through wait_until
eight_answers() { [ "$(wc -l <"$OUT")" -ge 8 ]; }
if ! wait_until 20 eight_answers; then
	not_ok "launcher-client got its eight answers (got: $(tr '\n' '|' <"$OUT"); stderr: $(tr '\n' '|' <"$ERR"))"
	finish
fi
sed 's/^/# /' "$OUT"

answer() { awk -v l="$1" '$1 == l { print $3 }' "$OUT"; }
pid_of() { awk -v l="$1" '$1 == l { print $2 }' "$OUT"; }
for label in pid1 launcher self other-user root-child zombie nonexistent; do
	check "a scope for '$label' (PID $(pid_of "$label")) is refused" test "$(answer "$label")" = refused
done
check "the launcher logs each refusal (7)" test "$(grep -c 'Launcher: refused StartCheckerScope' "$ERR")" -ge 7
check "a scope for the client's own child running as its user is made (the control)" \
	test "$(answer own-child)" = accepted
unit=$(awk '$1 == "own-child" { print $4 }' "$OUT")
units=$(sd_units 'mandos-checker-*' | tr '\n' ' ')
check "the manager has that one checker scope and no other ($units)" test "$units" = "$unit "
for label in pid1 launcher self other-user root-child; do
	pid=$(pid_of "$label")
	cg=$(sd_cgroup_of "$pid")
	check "'$label' (PID $pid) is in no checker scope (${cg:-gone})" sh -c "! printf '%s' '$cg' | grep -q mandos-checker"
done
own=$(pid_of own-child)
check "the client's own child is in $unit" sh -c "sd_cg=\$(nsenter -t $SD_PID1 -a -r -w sed -n 's/^0:://p' /proc/$own/cgroup); case \$sd_cg in */$unit) exit 0;; esac; exit 1"

sd_run kill "$(pid_of root-child)"
echo >&"$go"
exec {go}>&-
wait "$client"
# shellcheck disable=SC2317
no_scope() { [ -z "$(sd_units 'mandos-checker-*')" ] || [ "$(sd_prop "$unit" ActiveState)" != active ]; }
check "the scope goes when the launcher goes ($unit: $(wait_until 10 no_scope; sd_prop "$unit" ActiveState))" no_scope
finish
