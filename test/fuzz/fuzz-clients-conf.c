/* SPDX-License-Identifier: GPL-3.0-or-later */
/* clients.conf as a whole: any text gives valid clients plus one line per
 * problem, never a crash; every client that loads is usable. */

#include "checker.h"
#include "clients-conf.h"
#include "fuzz.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(clients_conf_freep) ClientsConf *c = NULL;

        if (clients_conf_parse("fuzz/clients.conf", (const char *) data, size, &c) < 0)
                return 0; /* ENOMEM */
        for (size_t i = 0; i < c->n_problems; i++)
                fuzz_assert(c->problems[i] && strncmp(c->problems[i], "fuzz/clients.conf:", 18) == 0);
        for (size_t i = 0; i < c->n_warnings; i++)
                fuzz_assert(c->warnings[i] && strncmp(c->warnings[i], "fuzz/clients.conf:", 18) == 0);
        for (size_t i = 0; i < c->n_clients; i++) {
                const ClientSettings *cc = c->clients[i];
                const char *why = NULL;

                fuzz_assert(cc->name && cc->key_id && cc->fingerprint && cc->host && cc->checker_command);
                fuzz_assert(cc->secret);
                fuzz_assert(!strchr(cc->key_id, ' ') && !strchr(cc->fingerprint, ' '));
                /* A loaded client's checker is known to expand. */
                fuzz_assert(checker_template_validate(cc->checker_command, &why) == 0);
        }
        return 0;
}
