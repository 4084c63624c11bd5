/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Saving the state at the cost of the change, not of the fleet
 * (docs/STATE.md, Writing): the clients changed in one loop iteration
 * become one append to the journal (src/state-journal.h), written and
 * fdatasync'ed by a thread of its own; when the journal has outgrown a
 * share of the snapshot, a forked child writes a new snapshot from the
 * copy-on-write memory of the moment (the loop only pays for the fork), and
 * the journals it covers are deleted once it is in place. */

#include <stdbool.h>
#include <stdint.h>

#include "state.h"

typedef struct Server Server;
typedef struct StateWriter StateWriter;

/* Start saving s's clients to s->statedir: opens a new journal and
 * writes a snapshot of the clients as they are now. */
int state_writer_new(Server *s, StateWriter **ret);
/* Hand over what is queued, wait until it is written, stop the thread
 * (and a snapshot being written: the journals keep everything). */
StateWriter *state_writer_free(StateWriter *w);

/* c changed: full, its settings, secret or enabled state; else its times
 * only. Written at the next state_writer_flush(). */
void state_writer_client(StateWriter *w, Client *c, bool full);
/* Changes of the set of clients, queued at once, in order. */
void state_writer_forget(StateWriter *w, const char *name);
void state_writer_removed(StateWriter *w, const SavedClient *r);
void state_writer_unremove(StateWriter *w, const char *name);

/* One append of what is queued, handed to the thread — all of it, or
 * (all false) of at most a few hundred clients, so that a loop iteration
 * stays short; a snapshot if the journal grew too large. Returns 1 if
 * changed clients remain, 0, or -errno of a write that failed since the
 * last call (a snapshot is then due, which covers what was lost). */
int state_writer_flush(StateWriter *w, bool all);
