/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Running checkers (mandos(8), CHECKERS): "/bin/sh -c COMMAND", the
 * command expanded by the requester (src/client-settings.h), in the
 * server's unprivileged identity, cwd "/", stdin and stdout on /dev/null.
 * It knows nothing of clients: a CheckerRequest says what to run and whom
 * to tell.
 *
 * Two backends behind one interface:
 *  - scope: the child is forked in its own process group, the systemd
 *    manager puts it in a new transient scope unit
 *    (mandos-checker-NAME-N.scope, with limits), and only then does it
 *    exec; stopping stops the scope;
 *  - plain: its own process group; stopping sends SIGTERM to the group,
 *    then SIGKILL after a grace period.
 * Either way a checker is stopped as a whole and reaped: no zombie, no
 * orphan. At most max_running checker processes exist at once; requests
 * made while all slots are taken wait in a FIFO queue.
 *
 * The manager's thread starts the processes: posix_spawn() returns only
 * once the child has exec'd (a vfork), which on a machine busy with
 * checkers takes a good part of a millisecond, and the loop serving the
 * fleet must not wait for that. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "util.h"

typedef struct Checker Checker;
typedef struct CheckerRequest CheckerRequest;

/* What a requester does at each step; one table for all its requests (a
 * request finds its requester with container_of()). */
typedef struct CheckerRequestOps {
        /* A slot is free (at once, or after a wait in the queue): what to
         * run now, malloc'd, the name its scope unit and messages carry
         * (borrowed until started() returns), and how long it may run at
         * most (the scope's RuntimeMaxUSec). 0, or a negative errno: then
         * nothing runs. */
        int (*prepare)(CheckerRequest *req, char **ret_command, const char **ret_name, uint64_t *ret_runtime_max);
        /* It is starting: handed to the thread that execs it (waited: it
         * had to wait for a slot). */
        void (*started)(CheckerRequest *req, const char *command, bool waited);
        /* It exited with exit_code 0–255 (127 if /bin/sh could not be
         * started at all), or -1 with the signal that killed it. Never
         * after checker_cancel(). */
        void (*finished)(CheckerRequest *req, int exit_code, int signal);
} CheckerRequestOps;

/* One requester's checker runs, embedded in it (a Client); it must cancel
 * (checker_cancel()) before it goes. */
struct CheckerRequest {
        const CheckerRequestOps *ops;

        /* The manager's. */
        Checker *process;            /* the running checker process, or NULL */
        CheckerRequest *queue_next;  /* waiting for a free slot (checker_request_queued()) */
        CheckerRequest *queue_prev;  /* never NULL while it waits, even first in line */
};

static inline bool checker_request_queued(const CheckerRequest *req) {
        return req->queue_prev != NULL;
}

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

/* Run a checker now if a slot is free, else queue the request; a no-op
 * while one runs or waits. Returns 0 (req->process is set once it runs),
 * or a negative errno. */
int checker_request(CheckerManager *m, CheckerRequest *req);
/* Take the request out of the queue, and stop its running checker (no
 * completion is reported for it). */
void checker_cancel(CheckerManager *m, CheckerRequest *req);

unsigned checker_manager_queued(const CheckerManager *m);

/* "mandos-checker-CLIENT-SERIAL.scope", the client's name escaped as unit
 * names need it (characters outside [A-Za-z0-9:_.-] become \xNN). Returns
 * a malloc'd string, or NULL on ENOMEM. */
char *checker_scope_name(const char *client, unsigned serial);
