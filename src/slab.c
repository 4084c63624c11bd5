/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "slab.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
/* Pages are mapped, not malloc()'d: the leak checker must look in them
 * for the pointers the objects hold. */
#define ROOT_REGION(p, n) __lsan_register_root_region(p, n)
#define UNROOT_REGION(p, n) __lsan_unregister_root_region(p, n)
#else
#define POISON(p, n) ((void) (p), (void) (n))
#define UNPOISON(p, n) ((void) (p), (void) (n))
#define ROOT_REGION(p, n) ((void) (p), (void) (n))
#define UNROOT_REGION(p, n) ((void) (p), (void) (n))
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
                        /* The rest of the page, less than a slot, stays unused.
                         * Mapped, outside the heap: malloc()'d pages would sit
                         * among the start-up's short-lived allocations, and the
                         * holes those leave between them would stay resident. */
                        void **page = mmap(NULL, SLAB_PAGE_SIZE, PROT_READ | PROT_WRITE,
                                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                        if (page == MAP_FAILED)
                                return NULL;
                        ROOT_REGION(page, SLAB_PAGE_SIZE);
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

static size_t class_of(size_t step, size_t size) {
        return (MAX(size, (size_t) 1) + step - 1) / step - 1;
}

void *slab_sized_alloc(Slab classes[], size_t step, size_t size) {
        Slab *s = &classes[class_of(step, size)];

        if (s->size == 0)
                s->size = (class_of(step, size) + 1) * step;
        return slab_alloc(s);
}

void slab_sized_free(Slab classes[], size_t step, void *p, size_t size) {
        slab_free(&classes[class_of(step, size)], p);
}

void slab_done(Slab *s) {
        while (s->pages) {
                void **page = s->pages;
                s->pages = page[0];
                UNPOISON(page, SLAB_PAGE_SIZE);
                UNROOT_REGION(page, SLAB_PAGE_SIZE);
                (void) munmap(page, SLAB_PAGE_SIZE);
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
