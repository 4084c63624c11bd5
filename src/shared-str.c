/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "shared-str.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "util.h"

/* ---------------------------------------------------------------- registered */

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

/* ---------------------------------------------------------------- small */

#define SLOT 8

/* By size class (slab_sized_alloc()). */
static Slab classes[SHARED_STR_SMALL / SLOT];

/* ---------------------------------------------------------------- the API */

static char *copy(const char *s, size_t size) {
        char *r = size <= SHARED_STR_SMALL ? slab_sized_alloc(classes, SLOT, size) : malloc(size);

        if (r)
                memcpy(r, s, size);
        return r;
}

char *shared_str_dup(const char *s) {
        char *r;

        if (shared_str_is(s))
                return (char *) s;
        r = find(s);
        return r ?: copy(s, strlen(s) + 1);
}

char *shared_str_take(char *s) {
        char *r;

        if (!s)
                return NULL;
        r = shared_str_dup(s);
        free(s);
        return r;
}

char *shared_str_free(char *s) {
        size_t size;

        if (!s || shared_str_is(s))
                return NULL;
        size = strlen(s) + 1;
        if (size <= SHARED_STR_SMALL)
                slab_sized_free(classes, SLOT, s, size);
        else
                free(s);
        return NULL;
}

char *shared_str_read(char *s, char **last) {
        s = shared_str_take(s);
        if (s && !shared_str_is(s) && *last && streq(*last, s) && n_registered < SHARED_STR_MAX) {
                /* The second client in a row with this value: from now on
                 * they share one copy (the previous one keeps its own). */
                registry[n_registered++] = s;
        }
        if (s && *last != s) {
                shared_str_free(*last);
                *last = shared_str_dup(s);
                if (!*last) {
                        shared_str_free(s);
                        return NULL;
                }
        }
        return s;
}
