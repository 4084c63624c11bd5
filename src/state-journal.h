/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The state's journal (docs/STATE.md, Journal): STATEDIR/clients.journal-N,
 * files of self-checking records, one line each,
 *
 *     <CRC-32 of the JSON, 8 lower-case hex digits> <JSON object>\n
 *
 * appended after the snapshot clients.json whose "journal" is N (or an
 * earlier one) and replayed on top of it at start-up, generation by
 * generation. A record is a client's whole entry ("client"), its times
 * alone ("times"), or a change of the set of clients ("forget", "removed",
 * "unremove"). A record whose line is cut short or whose CRC does not
 * match ends the replay of its file (a write torn by a crash): it and
 * what follows in that file are ignored, and reported. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

#define JOURNAL_PREFIX "clients.journal-"

typedef struct JournalBuffer {
        char *data;
        size_t size, allocated;
} JournalBuffer;

void journal_buffer_done(JournalBuffer *b);

/* Append one record to b. Return 0 or -ENOMEM. */
int journal_record_client(JournalBuffer *b, const Client *c);
int journal_record_times(JournalBuffer *b, const Client *c);
int journal_record_forget(JournalBuffer *b, const char *name);
int journal_record_removed(JournalBuffer *b, const SavedClient *r);
int journal_record_unremove(JournalBuffer *b, const char *name);

/* The generations of the journals in dir, ascending (*ret freed by the
 * caller). */
int journal_list(const char *dir, uint64_t **ret, size_t *ret_n);
int journal_path(const char *dir, uint64_t gen, char **ret);

/* Replay the journals of dir from generation s->journal on into s, the
 * snapshot just read (snapshot false: there is none; every journal is
 * replayed onto the empty s). Journals older than s->journal, or all of
 * them if the snapshot names none (an older server wrote it, after them),
 * are deleted: the snapshot holds what they said. Returns the number of
 * records applied, or -errno. */
int journal_replay(const char *dir, State *s, bool snapshot);

/* The snapshot they follow is corrupt: rename the journals, adding
 * suffix (NULL: deleted), for a human to look at. */
void journal_set_aside(const char *dir, const char *suffix);

uint32_t journal_crc32(const void *p, size_t n);
