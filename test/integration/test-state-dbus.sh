#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# What an admin does over D-Bus survives a crash (mandos(8), PERSISTENT STATE):
# a client disabled with mandos-ctl stays disabled, a removed one stays
# removed, a setting changed at run time is kept, and a secret set at run time
# is served again after a SIGKILL and a restart — while the state directory
# never holds that secret in the clear.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
. "$TEST_DIR/dbus-lib.sh"
require_common
require_dbus

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" \
	"$(client_section alpha 'checker = true')" \
	"$(client_section bravo 'checker = true')" \
	"$(client_section charlie 'checker = true')"
STATEDIR=$(new_statedir)

start_mandos_dbus || bail "server does not start on its bus"
check "mandos-ctl disables bravo" ctl --disable bravo
check "mandos-ctl removes charlie" ctl --remove charlie
check "mandos-ctl sets alpha's timeout" ctl --timeout PT7H alpha

# A new secret for alpha, encrypted to alpha's key as mandos-keygen does it.
keygen_secret alpha 'the run-time secret of alpha' "$SCRATCH/newsecret.bin"
check "mandos-ctl sets alpha's secret" ctl --secret "$SCRATCH/newsecret.bin" alpha
check "alpha is served its new secret" test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"

# The urgent changes are saved after the loop iteration; give it a moment.
sleep 1
kill -KILL "$MANDOS_PID"
wait "$MANDOS_PID" 2>/dev/null

check "the state file is mode 0600" test "$(stat -c %a "$STATEDIR/clients.json")" = 600
check "the run-time secret is not in the state in the clear" \
	sh -c "! grep -rqaF 'the run-time secret of alpha' '$STATEDIR'"
check "nor is its OpenPGP form" "$PY" -c '
import os, sys
secret = open(sys.argv[1], "rb").read()
for d, _, files in os.walk(sys.argv[2]):
    for f in files:
        if secret in open(os.path.join(d, f), "rb").read():
            sys.exit(1)' "$SCRATCH/newsecret.bin" "$STATEDIR"
b64=$(base64 -w0 "$SCRATCH/newsecret.bin")
check "nor its base64" sh -c "! grep -rqF '${b64:0:60}' '$STATEDIR'"

start_mandos_dbus || bail "server does not restart"
expect_prop "bravo, disabled over D-Bus before the SIGKILL, is still disabled" bravo Enabled "b false"
expect_nothing "bravo gets nothing" bravo "[::1]:$PORT" 3
check "charlie, removed over D-Bus, is still removed" sh -c "! busctl --address='$BUS' --list tree se.recompile.Mandos | grep -q /clients/charlie"
expect_nothing "charlie gets nothing" charlie "[::1]:$PORT" 3
expect_prop "alpha's run-time timeout is kept" alpha Timeout "t 25200000"
check "alpha is served its run-time secret after the crash" \
	test "$(fetch alpha "[::1]:$PORT" 10)" = "the run-time secret of alpha"

stop_mandos TERM
check "server exits 0 on SIGTERM (got $MANDOS_RC)" test "$MANDOS_RC" = 0
finish
