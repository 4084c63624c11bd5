/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "slab.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void) (p), (void) (n))
#define UNPOISON(p, n) ((void) (p), (void) (n))
#endif

/* A page's first bytes: the page before it (leak checkers then see every
 * page reachable from s->pages). */
#define PAGE_HEADER 16

void *slab_alloc(Slab *s) {
        uint8_t *p;

        assert(s->size >= sizeof(void *) && s->size % 8 == 0 && s->size <= SLAB_PAGE_SIZE - PAGE_HEADER);
        if (s->free) {
                p = s->free;
                UNPOISON(p, s->size);
                s->free = *(void **) p;
        } else {
                if (s->left < s->size) {
                        /* The rest of the page, less than a slot, stays unused. */
                        void **page = malloc(SLAB_PAGE_SIZE);
                        if (!page)
                                return NULL;
                        page[0] = s->pages;
                        s->pages = page;
                        s->next = (uint8_t *) page + PAGE_HEADER;
                        s->left = SLAB_PAGE_SIZE - PAGE_HEADER;
                        POISON(s->next, s->left);
                }
                p = s->next;
                s->next += s->size;
                s->left -= s->size;
                UNPOISON(p, s->size);
        }
        memset(p, 0, s->size);
        return p;
}

void slab_done(Slab *s) {
        while (s->pages) {
                void **page = s->pages;
                s->pages = page[0];
                UNPOISON(page, SLAB_PAGE_SIZE);
                free(page);
        }
        *s = (Slab) { .size = s->size };
}

void slab_free(Slab *s, void *p) {
        if (!p)
                return;
        *(void **) p = s->free;
        s->free = p;
        POISON((uint8_t *) p + sizeof(void *), s->size - sizeof(void *));
}
