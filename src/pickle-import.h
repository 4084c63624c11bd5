/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The reference server's saved state, clients.pickle, read as a State
 * (state.h) so that it is merged with clients.conf by the same rules as our
 * own (docs/STATE.md, "Importing the reference server's clients.pickle").
 *
 * The pickle is `(clients, client_settings)`: the live clients with their
 * run-time values, and the clients.conf settings as they were at its last
 * run (the snapshot the merge compares with). It is read with the
 * restricted reader of pickle.h, never executed. */

#include "clients-conf.h"
#include "state.h"

#define PICKLE_FILE_NAME "clients.pickle"
#define PICKLE_IMPORTED_SUFFIX ".imported"

/* SavedClient.version of a client imported from a pickle: its
 * encrypted_secret opens with the reference's passphrase (secret-crypt.h,
 * SECRET_KDF_REFERENCE) and is encrypted again with ours once opened. */
#define STATE_VERSION_PICKLE 1000

/* Read the pickle from fd and build the State for the clients that conf
 * still defines. Returns 0, -ENOMEM, or -EBADMSG with *ret_error saying why
 * ("truncated at byte N", "global posix.system refused at byte N", a value
 * of the wrong type, …). */
int pickle_import_state(int fd, const ClientsConf *conf, State **ret, char **ret_error);
