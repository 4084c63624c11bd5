/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The restricted pickle reader (src/pickle.c): any bytes give a tree or an
 * error saying why, never a crash; the tree keeps the bounds pickle.h
 * promises (nesting, and so no cycle), which a walk checks here. */

#include <errno.h>

#include "fuzz.h"
#include "pickle.h"
#include "util.h"

typedef struct Frame {
        const PickleValue *v;
        unsigned depth;
} Frame;

/* Depth first, with a stack of our own: a walk no deeper than the bound. */
static void walk(const PickleValue *root) {
        static Frame stack[1 << 16];
        size_t n = 0, visits = 0;
        uint64_t u;

        stack[n++] = (Frame) { root, 0 };
        while (n > 0) {
                Frame f = stack[--n];
                bool container = f.v->type == PICKLE_LIST || f.v->type == PICKLE_TUPLE || f.v->type == PICKLE_DICT;

                fuzz_assert(f.depth <= PICKLE_MAX_DEPTH);
                fuzz_assert(++visits <= 100u * 1000 * 1000);
                if (f.v->type == PICKLE_DATETIME)
                        (void) pickle_datetime_usec(f.v, &u);
                else if (f.v->type == PICKLE_TIMEDELTA)
                        (void) pickle_timedelta_usec(f.v, &u);
                else if (f.v->type == PICKLE_STR || f.v->type == PICKLE_BYTES)
                        fuzz_assert(f.v->str.data[f.v->str.size] == 0);
                if (!container)
                        continue;
                if (f.v->type == PICKLE_DICT) {
                        fuzz_assert(f.v->seq.n % 2 == 0);
                        (void) pickle_dict_get(f.v, "name");
                }
                for (size_t i = 0; i < f.v->seq.n && n < ELEMENTSOF(stack); i++)
                        stack[n++] = (Frame) { f.v->seq.items[i], f.depth + 1 };
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(pickle_freep) Pickle *p = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = pickle_parse(data, size, &p, &error);
        if (r == -ENOMEM)
                return 0;
        fuzz_assert(r == 0 || r == -EBADMSG);
        if (r < 0) {
                fuzz_assert(!p && error);
                return 0;
        }
        fuzz_assert(p && !error);
        walk(pickle_root(p));
        return 0;
}
