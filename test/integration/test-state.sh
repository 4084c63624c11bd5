#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# Persistent state (mandos(8), PERSISTENT STATE; docs/STATE.md): a client
# disabled by expiry stays disabled across a SIGKILL and a restart; SIGKILLs at
# random moments never leave a mixed or empty state file; the state holds no
# secret and is mode 0600; a corrupt state file is set aside and the server
# serves.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
STATEDIR=$(new_statedir)
STATE="$STATEDIR/clients.json"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section bravo 'timeout = PT1S' 'interval = PT1S' 'checker = false')"

# state_ok FILE: a complete state file of this server (valid JSON, our
# format, every client whole). Prints the client names.
state_ok() {
	"$PY" - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["format"] == "mandos-state" and s["version"] == 2
for c in s["clients"]:
    for part in ("config", "runtime"):
        for k in ("key_id", "host", "checker", "timeout", "interval", "enabled"):
            assert k in c[part], (c["name"], part, k)
print(" ".join(sorted(c["name"] for c in s["clients"])))
PY
}

# ------------------------------------------------ disabled by expiry, then SIGKILL
start_mandos || bail "server does not start"
assert_log "Client bravo has expired and is disabled" 5
sleep 0.5
kill -KILL "$MANDOS_PID"
wait "$MANDOS_PID" 2>/dev/null
check "a state file was written" test -s "$STATE"
check "the state file is mode 0600" test "$(stat -c %a "$STATE")" = 600
start_mandos || bail "server does not restart"
expect_nothing "bravo, disabled by expiry before the SIGKILL, stays disabled" bravo "[::1]:$PORT" 3
assert_log "Client bravo is disabled"
expect_secret "alpha is still served after the restart" alpha "[::1]:$PORT"
check "the secret is in no state file" sh -c "! grep -rqF -- '$(secret_of alpha)' '$STATEDIR'"
secret_b64=$(sed -n '/^secret =/,/^[a-z_]* =/p' "$KEY_CACHE/alpha/section.conf" | sed -n '2p' | tr -d ' ')
check "a line of alpha's configured secret was found to look for" test "${#secret_b64}" -ge 40
check "no line of the configured secret is in the state" sh -c "! grep -rqF -- '$secret_b64' '$STATEDIR'"
stop_mandos TERM
check "server exits 0 (got $MANDOS_RC)" test "$MANDOS_RC" = 0

# ------------------------------------------------ crash consistency
# Each round: a reload changes alpha's host (a state write), then a SIGKILL
# at a random moment; the file must be whole and hold one of the hosts.
bad=0
rounds=50
for round in $(seq $rounds); do
	start_mandos >/dev/null || { bad=$((bad + 1)); continue; }
	sed -i "s/^host = .*alpha.*/host = alpha-round-$round/; s/^host = alpha$/host = alpha-round-$round/" "$CONFDIR/clients.conf"
	kill -HUP "$MANDOS_PID"
	sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
	kill -KILL "$MANDOS_PID"
	wait "$MANDOS_PID" 2>/dev/null
	if ! names=$(state_ok "$STATE" 2>"$SCRATCH/state-error"); then
		diag "round $round: bad state file: $(cat "$SCRATCH/state-error")"
		bad=$((bad + 1))
		continue
	fi
	host=$("$PY" -c 'import json,sys; print(next(c["runtime"]["host"] for c in json.load(open(sys.argv[1]))["clients"] if c["name"]=="alpha"))' "$STATE")
	case "$host" in
	alpha | alpha-round-$round | alpha-round-$((round - 1))) ;;
	*) diag "round $round: alpha's host is '$host'"; bad=$((bad + 1)) ;;
	esac
	[ "$names" = "alpha bravo" ] || { diag "round $round: clients '$names'"; bad=$((bad + 1)); }
done
check "$rounds SIGKILLs at random moments: the state file was always whole ($bad bad)" test "$bad" -eq 0
start_mandos || bail "server does not restart after the crashes"
check "no temporary file remains once the server started" test "$(ls -A "$STATEDIR" | grep -c '^\.clients')" -eq 0
expect_secret "alpha is served after the crashes" alpha "[::1]:$PORT"
stop_mandos TERM

# ------------------------------------------------ corrupt state
printf '{"format": "mandos-state", "version": 1, "clients": [ {"name": ' >"$STATE"
start_mandos || bail "server does not start with a corrupt state file"
assert_log "Could not load persistent state $STATE"
check "the corrupt file is kept aside" sh -c "ls '$STATEDIR' | grep -q '^clients.json.corrupt-'"
check "the kept file is the corrupt one" sh -c "grep -q '\"clients\": \\[ {\"name\": \$' '$STATEDIR'/clients.json.corrupt-*"
expect_secret "alpha is served with a corrupt state file" alpha "[::1]:$PORT"
stop_mandos TERM
check "a good state file replaced the corrupt one" state_ok "$STATE"
finish
