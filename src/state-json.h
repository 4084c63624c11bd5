/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The JSON of one client, shared by the snapshot (src/state.c) and the
 * journal's records (src/state-journal.c): one layout for both. */

#include <json-c/json.h>

#include "state.h"

typedef struct Reader {
        char *error;         /* the first problem found, or NULL */
} Reader;

void fail(Reader *rd, const char *format, ...) __attribute__((format(printf, 2, 3)));
json_object *member(Reader *rd, json_object *o, const char *key, json_type type);
uint64_t get_u64(Reader *rd, json_object *o, const char *key);

/* A live client, as in the snapshot's "clients" (name, config, runtime,
 * encrypted_secret), and a removed one, as in "removed". */
json_object *client_to_json(const Client *c);
json_object *removed_to_json(const SavedClient *s);
SavedClient *saved_from_json(Reader *rd, json_object *o, unsigned version, bool live);
