/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "secret-mem.h"

#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "util.h"

#define STEP 16

/* By size class (slab_sized_alloc()). */
static Slab classes[SECRET_MEM_SMALL / STEP];

uint8_t *secret_new(const void *data, size_t size) {
        uint8_t *p = size <= SECRET_MEM_SMALL ? slab_sized_alloc(classes, STEP, size) : malloc(size);

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
                slab_sized_free(classes, STEP, p, size);
        } else
                erase_and_free(p, size);
        return NULL;
}
