/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Persistent state: what the server knows at run time that clients.conf
 * does not say (a client disabled by expiry or by an admin, settings
 * changed over D-Bus, clients removed, the times of the last checks), so
 * that a restart — or a crash — forgets none of it (docs/STATE.md).
 *
 * Files: STATEDIR/clients.json, mode 0600, JSON (format "mandos-state",
 * version 2, documented in docs/STATE.md; version 1 is read too): a
 * snapshot, written atomically (a temporary file, fsync, rename, fsync of
 * the directory) off the event loop, and never deleted on load; and the
 * journals clients.journal-N, which record each change after it
 * (src/state-journal.h). Neither holds a plaintext secret: a secret set at
 * run time is kept OpenPGP-encrypted (src/secret-crypt.h). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients-conf.h"

#define STATE_FILE_NAME "clients.json"
#define STATE_FORMAT "mandos-state"
#define STATE_VERSION 2

/* The run-time values of a client beyond its settings. Times are
 * CLOCK_REALTIME µs, 0 = none. */
typedef struct ClientTimes {
        uint64_t created;
        uint64_t last_enabled;
        uint64_t expires;
        uint64_t last_checked_ok;
        uint64_t last_approval_request;
        int last_checker_status;
} ClientTimes;

typedef struct SavedClient {
        ClientSettings *config;        /* clients.conf as when saved; secret: only its digest */
        uint8_t config_secret_digest[32];
        unsigned version;            /* of the file it came from: 1 = legacy digest and passphrase */
        ClientSettings *runtime;       /* the settings in force; no secret */
        ClientSettingMask absent;    /* CLIENT_SETTING_LATER ones the file lacks: clients.conf's apply */
        ClientTimes times;
        uint8_t *encrypted_secret;   /* a run-time secret, or NULL: the configured one */
        size_t encrypted_secret_size;
} SavedClient;

typedef struct State {
        uint64_t journal;            /* the journal generation that follows the snapshot; 0: none */
        SavedClient **clients;       /* live clients, in their order */
        size_t n_clients;
        SavedClient **removed;       /* removed at run time: config and digest only */
        size_t n_removed;
} State;

/* Read a state file. Returns 0, -ENOENT, another -errno, or -EINVAL for a
 * file that is not a valid state (with *ret_error saying why). */
int state_load(const char *path, State **ret, char **ret_error);
State *state_free(State *s);
static inline void state_freep(State **s) {
        if (*s)
                state_free(*s);
}
SavedClient *saved_client_free(SavedClient *s);
const SavedClient *state_find(const State *s, const char *name, bool removed);

/* Write the state of these clients atomically to dir/clients.json, as the
 * snapshot that journal generation journal (0: none) follows. */
typedef struct Client Client;
int state_save(const char *dir, uint64_t journal, Client *const *clients, size_t n_clients,
               const SavedClient *const *removed, size_t n_removed);

/* docs/STATE.md, Merging at start, rule 2: an enabled client whose saved
 * expiry passed (before now, CLOCK_REALTIME µs) while we were away stays
 * enabled only if its last checker succeeded, and then expires one
 * timeout from now; else m is disabled, with the reference's warning. Rule 1
 * is client_settings_merge(). */
void state_check_expiry(ClientSettings *m, ClientTimes *t, uint64_t now);
