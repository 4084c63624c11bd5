#!/bin/bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Checkers in transient scope units, under a real systemd manager (mandos(8),
# CHECKERS). Three servers run in turn as services of a namespaced
# systemd (lib.sh), each with clients whose key IDs are made up (nobody
# connects: only the checkers matter here):
#
#  1. "scope": running as root, so that the manager lets it create scopes.
#     alpha's checker sleeps 2.25 s every 3 s and succeeds; beta's ignores
#     SIGTERM and sleeps past beta's expiry; delta's leaves a process that
#     escaped the checker's process group (setsid) and ignores SIGTERM.
#     (a) While a checker runs, its scope is listed by systemctl, the
#         server's checker child and the escaped process are in its cgroup,
#         systemd-cgls shows them, the server itself is not moved, and the
#         scope carries the limits.
#     (b) When beta and delta expire, their scopes go away and no process of
#         their checkers remains; finished scopes of alpha are collected;
#         stopping the server leaves no scope and no checker behind.
#  2. "plain": the server stays root, but the system bus address points
#     nowhere. The server says once that no manager is reachable; checkers
#     run in their own process group in the service's cgroup; beta's is
#     killed at expiry after the grace.
#  3. "unprivileged": the server is started as _mandos (no root, so no
#     launcher); it does not ask for scopes (the manager would refuse them),
#     says so once, and runs its checkers as plain process groups.

# shellcheck source=../integration/lib.sh
. "${TEST_DIR:?TEST_DIR (test/integration) is not set}/lib.sh"
# shellcheck source=lib.sh
. "${SYSTEM_TEST_DIR:-$(cd "$(dirname "$0")" && pwd)}/lib.sh"

sd_require
require_prog setsid sha256sum base64
[ -n "${MANDOS:-}" ] || bail "MANDOS is not set (path to the server binary)"
[ -x "$MANDOS" ] || bail "MANDOS=$MANDOS is not an executable"

# How long a stopped checker has between SIGTERM and SIGKILL
# (CHECKER_KILL_GRACE in src/checker.h), and the slack we allow on top.
GRACE=5
SLACK=3

# How the "scope" and "plain" servers keep root: the manager lets only root
# create units (without polkit), and mandos drops to _mandos after opening
# its socket unless mandos.conf says run_as_root (mandos.conf(5)).
STAY_ROOT_CONF='run_as_root = yes'

# ------------------------------------------------------------------ setup

# section NAME KEY=VALUE...: sd_section with host = NAME.invalid.
section() {
	local name=$1
	shift
	sd_section "$name" "host=$name.invalid" "$@"
}

# Distinct durations make each checker's processes recognizable. At start-up a
# client expires one interval after its first checker started, whatever its
# timeout (docs/REFERENCE-BEHAVIOUR.md, Checker scheduling), so alpha's checker
# must end within its interval to keep it enabled, and beta and delta expire
# 3 s after their checker started (at a random moment within the first 3 s).
ALPHA_ARGS='sleep 2.25'
BETA_ARGS='sleep 31.25'
DELTA_ARGS='sleep 37.25'
ALPHA=$(section alpha interval=3s timeout=60s "checker=$ALPHA_ARGS")
BETA=$(section beta interval=3s timeout=2s "checker=trap '' TERM; $BETA_ARGS")
DELTA=$(section delta interval=3s timeout=2s "checker=trap '' TERM; setsid -w $DELTA_ARGS")
GAMMA=$(section gamma interval=1s timeout=10s "checker=true")

MANDOS_CONF_EXTRA=$STAY_ROOT_CONF write_config "$SCRATCH/conf-scope" "$ALPHA" "$BETA" "$DELTA"
MANDOS_CONF_EXTRA=$STAY_ROOT_CONF write_config "$SCRATCH/conf-plain" "$ALPHA" "$BETA"
write_config "$SCRATCH/conf-refused" "$GAMMA"

sd_init

# server_unit NAME PORT EXTRA-SERVICE-LINES: mandos-NAME.service, logging to
# $SCRATCH/mandos-NAME.log. The namespace has a network of its own, so any
# port is free.
server_unit() {
	local name=$1 port=$2 extra=$3 bin=${4:-$MANDOS} state
	state=$(new_statedir)
	sd_unit "mandos-$name.service" <<EOF
[Unit]
Description=mandos under test ($name)

[Service]
Type=exec
ExecStart="$bin" --foreground --debug --no-dbus --no-zeroconf --port $port --configdir "$SCRATCH/conf-$name" --statedir "$state"
StandardOutput=append:$SCRATCH/mandos-$name.log
StandardError=inherit
$extra
EOF
	: >"$SCRATCH/mandos-$name.log"
}
server_unit scope 7001 ""
server_unit plain 7002 "Environment=DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/system_bus_socket"
# Started as _mandos directly (no root, so no launcher: src/launcher.h).
# That user must reach the binary, its configuration and its state: a
# clone under a 0700 directory hides the build tree from it.
chmod 0755 "$SCRATCH"
mkdir -m 0755 "$SCRATCH/bin"
install -m 0755 "$MANDOS" "$SCRATCH/bin/mandos"
server_unit refused 7003 "User=_mandos" "$SCRATCH/bin/mandos"

sd_boot 20

# ---------------------------------------------------------------- helpers

# start_server NAME: start mandos-NAME.service and wait until it listens.
# Sets MANDOS_LOG, SERVER_PID (inside the namespace) and SERVER_CGROUP.
start_server() {
	local name=$1
	MANDOS_LOG="$SCRATCH/mandos-$name.log"
	if ! sd_run systemctl start "mandos-$name.service"; then
		not_ok "mandos-$name.service starts"
		return 1
	fi
	SERVER_PID=$(sd_main_pid "mandos-$name.service")
	SERVER_CGROUP=$(sd_prop "mandos-$name.service" ControlGroup)
	if ! log_has "Now listening on" 5; then
		not_ok "mandos-$name starts and listens (unit $(sd_prop "mandos-$name.service" ActiveState)," \
			"result $(sd_prop "mandos-$name.service" Result); its last words: '$(tail -n 1 "$MANDOS_LOG")')"
		return 1
	fi
	if [ -z "$SERVER_PID" ] || [ "$SERVER_PID" = 0 ]; then
		not_ok "mandos-$name.service is running"
		return 1
	fi
	diag "mandos-$name: PID $SERVER_PID (in the namespace), cgroup $SERVER_CGROUP, uid $(sd_uid_of "$SERVER_PID")"
	return 0
}

stop_server() {
	sd_run systemctl stop "mandos-$1.service"
}

# checker_child ARGS: the server's child process running the checker whose
# last command is ARGS (the shell running the checker, or ARGS itself when
# the shell exec'd it).
checker_child() {
	local want=$1 pid args
	for pid in $(sd_children "$SERVER_PID"); do
		args=$(sd_args "$pid")
		case $args in
		"$want" | *" $want") printf '%s' "$pid"; return 0 ;;
		esac
	done
	return 1
}

# scope_of NAME: the scopes loaded for client NAME's checkers, one a line.
scopes_of() {
	sd_units "mandos-checker-$1-*"
}

active_scope_of() {
	local u
	for u in $(scopes_of "$1"); do
		[ "$(sd_prop "$u" ActiveState)" = active ] && { printf '%s' "$u"; return 0; }
	done
	return 1
}

# shellcheck disable=SC2317 # called through wait_until
no_scope_of() { [ -z "$(scopes_of "$1")" ]; }
no_process() { [ -z "$(sd_pids_with_args "$1")" ]; }
# shellcheck disable=SC2317 # called through wait_until
some_process() { [ -n "$(sd_pids_with_args "$1")" ]; }
no_checker_scope() { [ -z "$(sd_units 'mandos-checker-*')" ]; }

# scope_states UNIT...: each unit with its states and pending job, and what
# the manager logged of it (for a failure's message).
scope_states() {
	local u
	for u in "$@"; do
		printf '%s %s/%s/%s job=%s; ' "$u" "$(sd_prop "$u" LoadState)" "$(sd_prop "$u" ActiveState)" \
			"$(sd_prop "$u" SubState)" "$(sd_run systemctl list-jobs --no-legend --no-pager "$u" 2>/dev/null | tr -s ' ' | tr '\n' ' ')"
		printf 'journal: %s; ' "$(sd_run journalctl --no-pager -o cat -u "$u" 2>/dev/null | tail -n 8 | tr '\n' '|')"
	done
}

# shellcheck disable=SC2046 # one word per unit
left_scope_states() { scope_states $(sd_units 'mandos-checker-*'); }

# ------------------------------------------------- 1. scope backend (root)

part_scope() {
	local scope cg pid pgrp uid out escaped names started t0 n

	start_server scope || return
	uid=$(sd_uid_of "$SERVER_PID")
	if [ "$uid" != 0 ]; then
		not_ok "the scope server keeps root (uid $uid: it dropped privileges although" \
			"its mandos.conf says '$STAY_ROOT_CONF')"
		stop_server scope
		return
	fi
	ok "the scope server runs as root"

	# (a) alpha's checker, in its scope.
	if ! wait_until 8 active_scope_of alpha >/dev/null; then
		not_ok "a scope for alpha's checker appears within 8 s (units: $(sd_units 'mandos-checker-*' | tr '\n' ' '))"
		stop_server scope
		return
	fi
	scope=$(active_scope_of alpha)
	out=$(sd_run systemctl list-units --plain --no-legend --no-pager 'mandos-checker-*')
	if awk -v s="$scope" '$1 == s && $2 == "loaded" && $3 == "active" && $4 == "running" { f = 1 }
		END { exit !f }' <<<"$out"; then
		ok "systemctl list-units 'mandos-checker-*' shows $scope loaded active running"
	else
		not_ok "systemctl list-units 'mandos-checker-*' shows $scope loaded active running (got: $out)"
	fi
	cg=$(sd_prop "$scope" ControlGroup)
	pid=$(wait_until 2 checker_child "$ALPHA_ARGS")
	if [ -z "$pid" ]; then
		not_ok "the server has a child running alpha's checker '$ALPHA_ARGS'"
	elif [ "$(sd_cgroup_of "$pid")" = "$cg" ] && [ -n "$cg" ]; then
		ok "alpha's checker (PID $pid: $(sd_args "$pid")) is in $cg"
	else
		not_ok "alpha's checker (PID $pid) is in $scope's cgroup '$cg' (it is in '$(sd_cgroup_of "$pid")')"
	fi
	out=$(sd_run systemd-cgls --no-pager -u "$scope" 2>&1)
	if [ -n "$pid" ] && grep -qE "[^0-9]$pid $ALPHA_ARGS\$|[^0-9]$pid .*$ALPHA_ARGS\$" <<<"$out" &&
		grep -qF "$scope" <<<"$out"; then
		ok "systemd-cgls -u $scope shows the checker (PID $pid) in it"
	else
		not_ok "systemd-cgls -u $scope shows the checker (PID ${pid:-?}): got: $(tr '\n' '|' <<<"$out")"
	fi
	if [ "$(sd_cgroup_of "$SERVER_PID")" = "$SERVER_CGROUP" ]; then
		ok "the server itself stays in $SERVER_CGROUP"
	else
		not_ok "the server itself stays in $SERVER_CGROUP (it is in $(sd_cgroup_of "$SERVER_PID"))"
	fi
	out=$(sd_run systemctl show -p CollectMode -p TasksMax -p MemoryMax -p RuntimeMaxUSec "$scope" | tr '\n' ' ')
	if grep -q 'CollectMode=inactive-or-failed' <<<"$out" &&
		! grep -qE 'TasksMax=infinity|MemoryMax=infinity|RuntimeMaxUSec=infinity' <<<"$out"; then
		ok "$scope is collected when done and has limits ($out)"
	else
		not_ok "$scope has CollectMode=inactive-or-failed, TasksMax, MemoryMax, RuntimeMaxUSec (got: $out)"
	fi

	# delta's escaped process is in delta's scope, though not in its group.
	if wait_until 8 some_process "$DELTA_ARGS"; then
		escaped=$(sd_pids_with_args "$DELTA_ARGS" | head -n 1)
		scope=$(scopes_of delta | head -n 1)
		pgrp=$(sd_stat_field "$escaped" 5)
		pid=$(checker_child "setsid -w $DELTA_ARGS")
		if [ -n "$scope" ] && [ -n "$pid" ] && [ "$pgrp" != "$pid" ] &&
			[ "$(sd_cgroup_of "$escaped")" = "$(sd_prop "$scope" ControlGroup)" ]; then
			ok "delta's escaped process (PID $escaped, group $pgrp, not the checker's $pid) is in $scope"
		else
			not_ok "delta's escaped process (PID $escaped, group $pgrp; checker ${pid:-?}) is in delta's scope '${scope:-none}' (it is in $(sd_cgroup_of "$escaped"))"
		fi
	else
		not_ok "delta's checker starts its escaped process '$DELTA_ARGS' within 8 s"
	fi

	# (b) beta and delta expire: scope and every process gone within the grace.
	for n in beta:"$BETA_ARGS" delta:"$DELTA_ARGS"; do
		local name=${n%%:*} args=${n#*:}
		if ! log_has "Client $name has expired" 8; then
			not_ok "$name expires within 8 s"
			continue
		fi
		t0=$SECONDS
		if wait_until $((GRACE + SLACK)) no_scope_of "$name"; then
			ok "$name expired: its scope is gone ($((SECONDS - t0)) s)"
		else
			not_ok "$name expired: its scope is gone within $((GRACE + SLACK)) s (still: $(scopes_of "$name" |
				while read -r u; do printf '%s %s/%s ' "$u" "$(sd_prop "$u" ActiveState)" "$(sd_prop "$u" SubState)"; done))"
		fi
		if wait_until 1 no_process "$args"; then
			ok "$name expired: no process of its checker remains ('$args')"
		else
			not_ok "$name expired: no process of its checker remains ($((SECONDS - t0)) s after expiry: '$args' is PID $(sd_pids_with_args "$args" | tr '\n' ' '))"
		fi
	done
	if [ -z "$(sd_zombies)" ]; then
		ok "no zombie in the namespace"
	else
		not_ok "no zombie in the namespace (PID PARENT: $(sd_zombies | tr '\n' ','))"
	fi

	# alpha keeps succeeding in new scopes; finished ones are collected.
	# shellcheck disable=SC2016 # for eval
	wait_until 5 eval '[ "$(log_count "Checker for alpha succeeded")" -ge 2 ]'
	started=$(sd_run journalctl --no-pager -o cat 2>/dev/null | grep -o 'mandos-checker-alpha-[0-9]*\.scope' | sort -u)
	names=$(scopes_of alpha | tr '\n' ' ')
	if [ "$(log_count "Checker for alpha succeeded")" -ge 2 ] && [ "$(wc -l <<<"$started")" -ge 2 ] &&
		[ "$(scopes_of alpha | wc -l)" -le 1 ] && ! log_has "Client alpha has expired" 0; then
		ok "alpha succeeded $(log_count "Checker for alpha succeeded") times in $(wc -l <<<"$started") scopes; loaded now: ${names:-none}"
	else
		not_ok "alpha succeeds repeatedly, each in a new scope, finished ones collected" \
			"(successes $(log_count "Checker for alpha succeeded"), scopes in the journal: $(tr '\n' ' ' <<<"$started"), loaded now: ${names:-none})"
	fi

	# Stopping the server leaves nothing behind.
	# The server kills its checkers and asks the manager to stop their
	# scopes; a scope the manager still sees as stopping may take its stop
	# timeouts (TimeoutStopUSec for SIGTERM, again for SIGKILL) to go.
	stop_server scope
	t0=$SECONDS
	if wait_until $SLACK no_checker_scope; then
		ok "after the server stopped no checker scope is left"
	elif diag "scopes still there $SLACK s after the stop: $(left_scope_states)" &&
		wait_until $((2 * GRACE + SLACK)) no_checker_scope; then
		ok "after the server stopped no checker scope is left ($((SECONDS - t0)) s: within the scopes' stop timeouts)"
	else
		not_ok "after the server stopped no checker scope is left (still: $(left_scope_states))"
	fi
	if no_process "$ALPHA_ARGS" && no_process "$BETA_ARGS" && no_process "$DELTA_ARGS"; then
		ok "after the server stopped no checker process is left"
	else
		not_ok "after the server stopped no checker process is left"
	fi
}

# clean_scopes: after a part, kill whatever checker scope is left (a failure
# already reported), so that the next part starts clean.
clean_scopes() {
	local left
	left=$(sd_units 'mandos-checker-*' | tr '\n' ' ')
	[ -n "$left" ] || return 0
	diag "killing checker scopes left behind: $left"
	# shellcheck disable=SC2086
	sd_run systemctl kill --signal=SIGKILL $left
	# shellcheck disable=SC2086
	wait_until $((2 * GRACE + SLACK)) no_checker_scope || bail "cannot get rid of the checker scopes $(scope_states $left)"
}

# ---------------------------------------- 2. no manager reachable: plain

part_plain() {
	local pid pgrp t0 msg='checkers run as plain process groups'

	start_server plain || return
	if log_has "No systemd manager reachable (" 5 && log_has "$msg" 0; then
		ok "with no manager reachable the server says: $(grep -F "No systemd manager reachable" "$MANDOS_LOG" | head -n 1 | sed 's/^.*No systemd/No systemd/')"
	else
		not_ok "with no manager reachable the server logs 'No systemd manager reachable (...): $msg'"
	fi
	pid=$(wait_until 8 checker_child "$ALPHA_ARGS")
	if [ -z "$pid" ]; then
		not_ok "alpha's checker runs within 8 s"
	else
		pgrp=$(sd_stat_field "$pid" 5)
		if [ "$(sd_cgroup_of "$pid")" = "$SERVER_CGROUP" ] && no_checker_scope; then
			ok "alpha's checker (PID $pid) runs in the service's cgroup, no scope exists"
		else
			not_ok "alpha's checker (PID $pid) runs in $SERVER_CGROUP without a scope (cgroup $(sd_cgroup_of "$pid"), units: $(sd_units 'mandos-checker-*' | tr '\n' ' '))"
		fi
		if [ "$pgrp" = "$pid" ] && [ "$pgrp" != "$(sd_stat_field "$SERVER_PID" 5)" ]; then
			ok "alpha's checker leads its own process group ($pgrp)"
		else
			not_ok "alpha's checker (PID $pid) leads its own process group (its group: $pgrp, the server's: $(sd_stat_field "$SERVER_PID" 5))"
		fi
	fi
	if ! log_has "Client beta has expired" 8; then
		not_ok "beta expires within 8 s"
	else
		t0=$SECONDS
		if wait_until $((GRACE + SLACK)) no_process "$BETA_ARGS"; then
			ok "beta expired: its checker, deaf to SIGTERM, is killed ($((SECONDS - t0)) s)"
		else
			not_ok "beta expired: its checker, deaf to SIGTERM, is killed within $((GRACE + SLACK)) s"
		fi
	fi
	if [ -z "$(sd_zombies)" ]; then
		ok "no zombie in the namespace"
	else
		not_ok "no zombie in the namespace (PID PARENT: $(sd_zombies | tr '\n' ','))"
	fi
	if [ "$(log_count "Starting checker")" -ge 2 ] && [ "$(log_count "$msg")" = 1 ]; then
		ok "said once for $(log_count "Starting checker") checkers"
	else
		not_ok "said once ($(log_count "$msg") times for $(log_count "Starting checker") checkers)"
	fi
	stop_server plain
}

# -------------------------------------- 3. unprivileged: no scope asked for

part_refused() {
	local uid msg='Not running as root: checkers run as plain process groups'

	start_server refused || return
	uid=$(sd_uid_of "$SERVER_PID")
	if [ "$uid" != 0 ]; then
		ok "the refused server dropped to uid $uid"
	else
		not_ok "the refused server dropped privileges (it runs as root)"
	fi
	if log_has "$msg" 5; then
		ok "the unprivileged server says: $msg"
	else
		not_ok "the unprivileged server logs '$msg'"
	fi
	if [ "$(log_count "refused the checker scope")" = 0 ]; then
		ok "it did not ask the manager for a scope"
	else
		not_ok "it did not ask the manager for a scope (the manager refused it)"
	fi
	# shellcheck disable=SC2016 # for eval
	if wait_until 5 eval '[ "$(log_count "Checker for gamma succeeded")" -ge 2 ]'; then
		ok "gamma's checkers run and succeed anyway ($(log_count "Checker for gamma succeeded") times)"
	else
		not_ok "gamma's checkers run and succeed anyway ($(log_count "Checker for gamma succeeded") times)"
	fi
	if no_checker_scope; then
		ok "no checker scope exists"
	else
		not_ok "no checker scope exists (units: $(sd_units 'mandos-checker-*' | tr '\n' ' '))"
	fi
	if [ "$(log_count "$msg")" = 1 ]; then
		ok "said once for $(log_count "Starting checker") checkers"
	else
		not_ok "said once ($(log_count "$msg") times for $(log_count "Starting checker") checkers)"
	fi
	stop_server refused
}

part_scope
clean_scopes
part_plain
clean_scopes
part_refused

if [ "$_fail_count" -gt 0 ]; then
	sd_dump_journal "$SCRATCH/namespace-journal.log"
fi
finish
