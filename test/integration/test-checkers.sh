#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Checkers keep clients alive or let them expire (mandos(8), CLIENTS, EXPIRY
# AND CHECKERS): `true` keeps a client enabled past several timeouts, `false`
# lets it expire; a checker still running when its client expires is killed
# with its children; %(host)s reaches the checker as one literal, shell-quoted
# argument, whatever it contains.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

# A world-writable place for what the checkers (running as _mandos) record.
OUT="$SCRATCH/out"
mkdir -m 0777 "$OUT"
cat >"$OUT/record-args.sh" <<'SH'
#!/bin/sh
# Write the number of arguments, then each argument on its own line.
dir=$(dirname "$0")
{ echo "$#"; for a in "$@"; do printf '%s\n' "$a"; done; } >"$dir/args.$$"
mv "$dir/args.$$" "$dir/args"
SH
chmod 0755 "$OUT/record-args.sh"

MARK=$$
HOST="a b'c\"d \$(touch $OUT/pwned) \`touch $OUT/pwned2\` ;x"
CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'timeout = PT2S' 'interval = PT1S' 'checker = true')" \
	"$(client_section bravo 'timeout = PT2S' 'interval = PT1S' 'checker = false')" \
	"$(client_section charlie 'timeout = PT2S' 'interval = PT1S' \
		"checker = sleep 31$MARK & sleep 32$MARK; sleep 33$MARK")" \
	"$(client_section delta 'interval = PT1S' "host = $HOST" \
		"checker = $OUT/record-args.sh %%(host)s %%(name)s" | sed '/^host = delta$/d')" \
	"$(client_section foxtrot 'timeout = PT20S' 'interval = PT1S' "checker = sleep 41$MARK")" \
	"$(client_section golf 'timeout = PT20S' 'interval = PT1S' 'checker = printf %%%%q x')"

server_starts

# charlie's checker runs; its two sleeps are in the checker's process group.
if log_has "Starting checker 'sleep 31$MARK" 3; then
	ok "charlie's checker started"
else
	not_ok "charlie's checker started"
fi
check "charlie's checker processes run" pgrep -f "sleep 3[12]$MARK"

# A checker that is one simple command is one process: the shell execs it
# (charlie's list above still runs under its shell).
log_has "Starting checker 'sleep 41$MARK' for foxtrot" 3 || diag "foxtrot's checker did not start"
fox=$(pgrep -f "^sleep 41$MARK\$" | head -n 1)
check "foxtrot's checker, a simple command, is the server's own child (no shell between)" \
	test -n "$fox" -a "$(ps -o ppid= -p "${fox:-0}" | tr -d ' ')" = "$MANDOS_PID"

# A shell builtin runs as the builtin, as under the reference's `sh -c`
# (and without a second exec): dash's printf has no %q, coreutils' has.
check "golf's checker, the builtin printf %q, failed" log_has "Checker for golf failed" 5
check "golf's checker never ran /usr/bin/printf" test "$(log_count 'Checker for golf succeeded')" -eq 0

# Within three timeouts: alpha stays enabled, bravo expires.
sleep 6
expect_secret "alpha (checker true) is still enabled after three timeouts" alpha "[::1]:$PORT"
check "alpha's checker succeeded" test "$(log_count 'Checker for alpha succeeded')" -ge 3
check "bravo's checker failed" test "$(log_count 'Checker for bravo failed')" -ge 1
# Without a systemd manager (as here, unless run under one), the launcher
# says so once and the server stops asking for scopes: no warning per
# checker (tens of them by now; thousands a minute with many clients).
if [ "$(id -u)" = 0 ] && [ ! -d /run/systemd/system ] && log_has "Launcher" 0; then
	check "no systemd manager: said once (got $(log_count 'No systemd manager reachable ('))" \
		test "$(log_count 'No systemd manager reachable (')" = 1
	check "no systemd manager: no warning per checker (got $(log_count 'No scope for the checker'))" \
		test "$(log_count 'No scope for the checker')" = 0
fi
assert_log "Client bravo has expired and is disabled"
expect_nothing "bravo (checker false) expired and gets nothing" bravo "[::1]:$PORT" 3
assert_log "Client bravo is disabled"

# charlie expired while its checker slept: all of it was killed.
assert_log "Client charlie has expired and is disabled"
check "no process of charlie's checker remains" wait_until 3 eval '! pgrep -f "sleep 3[123]$MARK" >/dev/null'
check "charlie's checker never reached its last command" test "$(log_count "Checker for charlie succeeded")" -eq 0

# delta's host reached the checker as one literal argument.
check "delta's checker ran" test -s "$OUT/args"
if [ -s "$OUT/args" ]; then
	check "the checker got exactly two arguments" test "$(sed -n 1p "$OUT/args")" = 2
	check "%(host)s arrived literally" test "$(sed -n 2p "$OUT/args")" = "$HOST"
	check "%(name)s arrived literally" test "$(sed -n 3p "$OUT/args")" = delta
fi
check "nothing in host was executed by the shell" test ! -e "$OUT/pwned" -a ! -e "$OUT/pwned2"

# No zombie: every child of the server is a live checker.
zombies=$(ps -o stat= --ppid "$MANDOS_PID" | grep -c '^Z' || true)
check "the server leaves no zombie ($zombies)" test "$zombies" -eq 0

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
check "no checker outlives the server" sh -c "! pgrep -f 'sleep 3[123]$MARK'"
finish
