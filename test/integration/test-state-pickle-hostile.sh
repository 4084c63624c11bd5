#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
# shellcheck disable=SC2317
#
# A clients.pickle written by whoever got the server's user must not run
# anything when we import it (docs/STATE.md, "Importing the reference
# server's clients.pickle"): pickles that run `touch MARKER` when Python
# unpickles them (proved here with Python itself) — posix.system and
# builtins.eval through GLOBAL (protocol 2) and STACK_GLOBAL (protocol 4),
# posix.system called by INST — are refused with the global or opcode
# named, leave no marker, are left in place untouched, and the server starts
# from clients.conf alone. The explicit `--import-pickle FILE` exits 1 on
# them, 0 on a good one, and 1 over a state of ours.

. "${TEST_DIR:-$(dirname "$0")}/lib.sh"
require_common

CONFDIR="$SCRATCH/conf"
write_config "$CONFDIR" "$(client_section alpha 'checker = true')"
MARKER="$SCRATCH/pwned"

# make_pickle KIND FILE: a crafted pickle of KIND.
make_pickle() {
	"$PY" - "$1" "$2" "$MARKER" <<'EOF'
import datetime, os, pickle, sys
kind, path, marker = sys.argv[1:]
cmd = "touch " + marker
class System:
    def __reduce__(self):
        return (os.system, (cmd,))
class Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system(%r)" % cmd,))
if kind == "system":
    data = pickle.dumps(({"alpha": System()}, {}), protocol=2)
elif kind == "system4":
    data = pickle.dumps(({"alpha": System()}, {}), protocol=4)
elif kind == "eval":
    data = pickle.dumps(({"alpha": Eval()}, {}), protocol=2)
elif kind == "eval4":
    data = pickle.dumps(({"alpha": Eval()}, {}), protocol=4)
elif kind == "inst":
    # Protocol 0's INST: MARK, the arguments, then the callable by name.
    arg = cmd.encode()
    data = b"\x80\x02(X" + len(arg).to_bytes(4, "little") + arg + b"iposix\nsystem\n."
elif kind == "good":
    td = datetime.timedelta
    settings = dict(host="alpha", approved_by_default=True, enabled=True, key_id=sys.argv[4] if len(sys.argv) > 4 else "",
                    fingerprint="", timeout=td(minutes=5), extended_timeout=td(minutes=15), interval=td(minutes=2),
                    approval_delay=td(0), approval_duration=td(seconds=1), checker_command="true",
                    last_approval_request=None, last_checked_ok=None, last_checker_status=-2)
    client = dict(settings, name="alpha", enabled=False, created=datetime.datetime.utcnow(),
                  last_enabled=datetime.datetime.utcnow(), expires=None, encrypted_secret=b"not gpg")
    data = pickle.dumps(({"alpha": client}, {"alpha": settings}), protocol=2)
open(path, "wb").write(data)
EOF
}

# Each crafted pickle really runs code when Python unpickles it.
for kind in system system4 eval eval4 inst; do
	make_pickle "$kind" "$SCRATCH/$kind.pickle"
	rm -f "$MARKER"
	(cd "$SCRATCH" && "$PY" -c 'import pickle, sys; pickle.load(open(sys.argv[1], "rb"))' "$SCRATCH/$kind.pickle") \
		>/dev/null 2>&1
	check "the $kind pickle runs a command when Python unpickles it" test -e "$MARKER"
	rm -f "$MARKER"
done

# refused KIND WHAT: our server, with the KIND pickle as clients.pickle, refuses it naming WHAT.
refused() {
	local kind=$1 what=$2
	STATEDIR=$(new_statedir)
	cp "$SCRATCH/$kind.pickle" "$STATEDIR/clients.pickle"
	if ! start_mandos; then
		not_ok "$kind: the server starts despite a hostile clients.pickle"
		return
	fi
	ok "$kind: the server starts despite a hostile clients.pickle"
	assert_log "ERROR: Could not import the reference server's state $STATEDIR/clients.pickle: $what"
	expect_secret "$kind: alpha is served from clients.conf" alpha "[::1]:$PORT"
	check "$kind: nothing ran (no marker)" test ! -e "$MARKER"
	check "$kind: the pickle is left in place, untouched" cmp -s "$STATEDIR/clients.pickle" "$SCRATCH/$kind.pickle"
	stop_mandos
	check "$kind: our state was written" test -s "$STATEDIR/clients.json"
	PORT=
}
refused system "global posix.system refused at byte"
refused system4 "global posix.system refused at byte"
refused eval "global __builtin__.eval refused at byte"
refused eval4 "global builtins.eval refused at byte"
refused inst "opcode INST (0x69) refused at byte"
check "the refusal names the opcode that reads the global" grep -qF "(GLOBAL)" "$SCRATCH"/mandos.1.log

# The explicit command: 1 for a hostile pickle, 0 for a good one, 1 over our state.
STATEDIR=$(new_statedir)
"$MANDOS" --configdir "$CONFDIR" --statedir "$STATEDIR" --import-pickle "$SCRATCH/eval.pickle" \
	>"$SCRATCH/import.1.log" 2>&1
check "--import-pickle of a hostile pickle exits 1" test $? -eq 1
check "… saying why" grep -qF "global __builtin__.eval refused at byte" "$SCRATCH/import.1.log"
check "… with nothing run" test ! -e "$MARKER"
check "… and no state written" test ! -e "$STATEDIR/clients.json"
make_pickle good "$SCRATCH/good.pickle" "$(key_id_of alpha)"
sum=$(sha256sum <"$SCRATCH/good.pickle")
"$MANDOS" --configdir "$CONFDIR" --statedir "$STATEDIR" --import-pickle "$SCRATCH/good.pickle" \
	>"$SCRATCH/import.2.log" 2>&1
check "--import-pickle of a good pickle exits 0" test $? -eq 0
check "… and writes our state" test -s "$STATEDIR/clients.json"
check "… leaving the file as it was" test "$(sha256sum <"$SCRATCH/good.pickle")" = "$sum"
"$MANDOS" --configdir "$CONFDIR" --statedir "$STATEDIR" --import-pickle "$SCRATCH/good.pickle" \
	>"$SCRATCH/import.3.log" 2>&1
check "--import-pickle over our existing state exits 1" test $? -eq 1
check "… saying so" grep -qF "clients.json exists" "$SCRATCH/import.3.log"
start_mandos
expect_nothing "alpha, disabled in the imported pickle, gets nothing" alpha "[::1]:$PORT" 3
stop_mandos

finish
