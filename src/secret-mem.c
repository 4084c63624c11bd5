/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "secret-mem.h"

#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "util.h"

#define STEP 16
#define N_CLASSES (SECRET_MEM_SMALL / STEP)

/* By size class, (size + 15) / 16 - 1; a slab's slot size is set when
 * its first secret comes. */
static Slab classes[N_CLASSES];

static size_t class_of(size_t size) {
        return (MAX(size, (size_t) 1) + STEP - 1) / STEP - 1;
}

uint8_t *secret_new(const void *data, size_t size) {
        uint8_t *p;

        if (size <= SECRET_MEM_SMALL) {
                Slab *s = &classes[class_of(size)];
                if (s->size == 0)
                        s->size = (class_of(size) + 1) * STEP;
                p = slab_alloc(s);
        } else
                p = malloc(size);
        if (p && size > 0)
                memcpy(p, data, size);
        return p;
}

uint8_t *secret_take(uint8_t *p, size_t size) {
        uint8_t *r;

        if (!p)
                return NULL;
        r = secret_new(p, size);
        erase_and_free(p, size);
        return r;
}

uint8_t *secret_free(uint8_t *p, size_t size) {
        if (!p)
                return NULL;
        if (size <= SECRET_MEM_SMALL) {
                explicit_bzero(p, size);
                slab_free(&classes[class_of(size)], p);
        } else
                erase_and_free(p, size);
        return NULL;
}
