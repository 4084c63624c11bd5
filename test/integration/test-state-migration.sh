#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# The state file's secrets need clients.conf to open (docs/STATE.md), and a
# state file of version 1, as the previous server wrote it, still loads:
# fixtures/state-v1 holds one (made by fixtures/make-state-v1.sh), with a
# secret that was set over D-Bus for alpha and bravo disabled over D-Bus,
# and the throwaway keys of both. In version 1 the file stored the SHA-256
# of the configured secret and derived the run-time secret's passphrase from
# that same digest: the file alone opened the secret.
#
# And a version 2 file of the format before the journal (one whole
# clients.json, fixtures/state-v2, written by commit 3c7b591 from the same
# clients, see fixtures/make-state-v2.sh) loads, and is followed by a
# journal from then on.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common
require_prog gpg

FIXTURE="$TEST_DIR/fixtures/state-v1"
HELPER="$TEST_DIR/state_secret.py"
CONFDIR="$SCRATCH/conf"
cp -r "$FIXTURE/conf" "$CONFDIR"
STATEDIR=$(new_statedir)
cp "$FIXTURE/state/clients.json" "$STATEDIR/"
chmod 0600 "$STATEDIR/clients.json"
chown --reference="$STATEDIR" "$STATEDIR/clients.json"
# fetch() takes the keys from the key cache: the fixture's own keys.
KEY_CACHE="$SCRATCH/keys"
cp -r "$FIXTURE/keys" "$KEY_CACHE"
touch "$KEY_CACHE/alpha/complete" "$KEY_CACHE/bravo/complete"
chmod -R go-rwx "$KEY_CACHE"

GPGHOME="$SCRATCH/gnupg"
mkdir -m 0700 "$GPGHOME"
stop_gpg_agent() {
	local pid
	for pid in $(pgrep -f -- "gpg-agent --homedir $GPGHOME( |\$)"); do
		kill "$pid" 2>/dev/null
	done
}

check "the fixture is a version 1 file" grep -q '"version": 1,' "$STATEDIR/clients.json"
check "which the file alone opens (the flaw this fixes)" \
	sh -c "! '$PY' '$HELPER' attack '$STATEDIR/clients.json' alpha '$GPGHOME'"
stop_gpg_agent

start_mandos || bail "server does not start on a version 1 state file"
check "alpha is served the secret set over D-Bus, from the version 1 file" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"
expect_nothing "bravo, disabled over D-Bus, stays disabled" bravo "[::1]:$PORT" 3
assert_log "Run-time secret of alpha moved to the state's current encryption"
check "the state file is written again as version 2 while the server runs" \
	log_has '"version": 2,' 3 "$STATEDIR/clients.json"
stop_mandos TERM
check "server exits 0 (got $MANDOS_RC)" test "$MANDOS_RC" = 0

check "the state file is now version 2" grep -q '"version": 2,' "$STATEDIR/clients.json"
check "it no longer holds the SHA-256 of the configured secret" \
	sh -c "! '$PY' '$HELPER' digest-is-sha256 '$STATEDIR/clients.json' '$CONFDIR/clients.conf' alpha"
check "no passphrase from the state file alone opens alpha's run-time secret" \
	"$PY" "$HELPER" attack "$STATEDIR/clients.json" alpha "$GPGHOME"
check "the passphrase from the configured secret does" \
	test "$("$PY" "$HELPER" open "$STATEDIR/clients.json" "$CONFDIR/clients.conf" alpha "$GPGHOME" \
		"$KEY_CACHE/alpha/seckey.txt")" = \
	"the run-time secret of alpha"
stop_gpg_agent

start_mandos || bail "server does not restart on the version 2 file"
check "alpha is still served its run-time secret" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"
expect_nothing "bravo is still disabled" bravo "[::1]:$PORT" 3
stop_mandos TERM

# ------------------------------------------------ version 2, before the journal
STATEDIR=$(new_statedir)
install -m 0600 "$TEST_DIR/fixtures/state-v2/state/clients.json" "$STATEDIR/"
chown --reference="$STATEDIR" "$STATEDIR/clients.json"
check "the fixture names no journal" sh -c "! grep -q '\"journal\"' '$STATEDIR/clients.json'"
start_mandos || bail "server does not start on the version 2 fixture"
check "alpha is served its run-time secret from the version 2 file" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"
expect_nothing "bravo, disabled over D-Bus in that file, stays disabled" bravo "[::1]:$PORT" 3
check "a snapshot that a journal follows replaces it" log_has '"journal": ' 5 "$STATEDIR/clients.json"
check "and the journal is there" sh -c "ls '$STATEDIR' | grep -q '^clients.journal-[0-9]*\$'"
kill -KILL "$MANDOS_PID"
wait "$MANDOS_PID" 2>/dev/null
start_mandos || bail "server does not restart after a SIGKILL"
check "alpha is still served its run-time secret" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"
expect_nothing "bravo is still disabled" bravo "[::1]:$PORT" 3
stop_mandos TERM
finish
