/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "shared-str.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* "" first; then copies, in the order they were registered. */
static char empty[1];
static char *registry[SHARED_STR_MAX] = { empty };
static unsigned n_registered = 1;

bool shared_str_is(const char *s) {
        for (unsigned i = 0; i < n_registered; i++)
                if (registry[i] == s)
                        return true;
        return false;
}

static char *find(const char *s) {
        for (unsigned i = 0; i < n_registered; i++)
                if (streq(registry[i], s))
                        return registry[i];
        return NULL;
}

char *shared_str_dup(const char *s) {
        if (shared_str_is(s))
                return (char *) s;
        if (!*s)
                return empty;
        return strdup(s);
}

char *shared_str_free(char *s) {
        if (s && !shared_str_is(s))
                free(s);
        return NULL;
}

char *shared_str_dedup(char *s) {
        char *r;

        if (!s || shared_str_is(s))
                return s;
        r = find(s);
        if (!r)
                return s;
        free(s);
        return r;
}

char *shared_str_read(char *s, char **last) {
        s = shared_str_dedup(s);
        if (s && !shared_str_is(s) && *last && streq(*last, s) && n_registered < SHARED_STR_MAX) {
                /* The second client in a row with this value: from now on
                 * they share one copy (the previous one keeps its own). */
                registry[n_registered++] = s;
        }
        if (s && *last != s) {
                shared_str_free(*last);
                *last = s && !shared_str_is(s) ? strdup(s) : s;
                if (!*last) {
                        shared_str_free(s);
                        return NULL;
                }
        }
        return s;
}
