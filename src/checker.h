/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Running checkers (mandos(8), CHECKERS): "/bin/sh -c COMMAND" with the
 * client's fields expanded and shell-quoted, in the server's unprivileged
 * identity, cwd "/", stdin and stdout on /dev/null.
 *
 * Two backends behind one interface:
 *  - scope: the child is forked in its own process group, the systemd
 *    manager puts it in a new transient scope unit
 *    (mandos-checker-NAME-N.scope, with limits), and only then does it
 *    exec; stopping stops the scope;
 *  - plain: its own process group; stopping sends SIGTERM to the group,
 *    then SIGKILL after a grace period.
 * Either way a checker is stopped as a whole and reaped: no zombie, no
 * orphan. At most max_running checker processes exist at once; clients
 * whose turn comes while all slots are taken wait in a FIFO queue. */

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "util.h"

typedef struct Client Client;
typedef struct Checker Checker;

/* Checker processes at most, by default; mandos.conf max_checkers. */
#define CHECKER_MAX_RUNNING_DEFAULT 64
/* How long a stopped checker has between SIGTERM and SIGKILL. */
#define CHECKER_KILL_GRACE (5 * USEC_PER_SEC)

typedef struct CheckerManager CheckerManager;

/* keep_stderr: leave the checkers' stderr on ours (debug mode), else /dev/null.
 * use_scopes: try the systemd manager for scope units first.
 * launcher: if not NULL, ask the root launcher for scopes instead
 * (src/launcher.h); borrowed, it must outlive the manager. */
int checker_manager_new(sd_event *event, unsigned max_running, bool keep_stderr, bool use_scopes,
                        sd_bus *launcher, CheckerManager **ret);
/* Stops (SIGKILL) every checker still running. */
CheckerManager *checker_manager_free(CheckerManager *m);

/* Run the client's checker now if a slot is free, else queue the client.
 * Returns 0 (c->checker_process is set once it runs), or a negative errno. */
int checker_request(CheckerManager *m, Client *c);
/* Take the client out of the queue, and stop its running checker (no
 * completion is reported for it). */
void checker_cancel(CheckerManager *m, Client *c);

unsigned checker_manager_running(const CheckerManager *m);
unsigned checker_manager_queued(const CheckerManager *m);

/* The checker command template: Python %-formatting with a mapping, where only
 * "%(name)s" (name one of those of mandos-clients.conf(5), EXPANSION) and "%%"
 * are allowed. Returns 0, or -EINVAL with *ret_error (static). */
int checker_template_validate(const char *template, const char **ret_error);
/* Expand the template for c, each value shell-quoted as Python's shlex.quote. */
int checker_expand(const Client *c, const char *template, char **ret);
/* shlex.quote(s), malloc'd. */
char *shell_quote(const char *s);

/* "mandos-checker-CLIENT-SERIAL.scope", the client's name escaped as unit
 * names need it (characters outside [A-Za-z0-9:_.-] become \xNN). Returns
 * a malloc'd string, or NULL on ENOMEM. */
char *checker_scope_name(const char *client, unsigned serial);
