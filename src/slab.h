/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once
/* Objects of one size, carved out of 64 KiB mapped pages with no header
 * each: for what a server holds 100,000 of (clients, their strings and
 * secrets), which malloc() would give 8 to 23 bytes more each, and mix
 * among the start-up's short-lived allocations, leaving holes that stay
 * resident when those are freed. A freed slot goes to the next object of
 * the same slab; pages are never given back (slab_done() aside). Not
 * thread-safe. Under AddressSanitizer a free slot is poisoned, and the
 * pages are roots for the leak checker. */
#include <stddef.h>
#include <stdint.h>

typedef struct Slab {
        size_t size;                 /* of a slot: a multiple of 8, at least 8 */
        void *free;                  /* freed slots, each pointing to the next */
        void *pages;                 /* every page, each starting with the one before it */
        uint8_t *next;               /* where the newest page is being carved */
        size_t left;
} Slab;

#define SLAB_INIT(object_size) { .size = ((object_size) + 7) / 8 * 8 }
#define SLAB_PAGE_SIZE (64 * 1024)

/* A slot of s->size bytes, zeroed, or NULL on ENOMEM. */
void *slab_alloc(Slab *s);
/* Gives p (from slab_alloc(s), or NULL) back to s. */
void slab_free(Slab *s, void *p);
/* Objects of many sizes, by class: classes[i] holds the sizes up to
 * (i + 1) * step bytes (step a multiple of 8), its slot size set when its
 * first object comes. The caller keeps the size (a string its length, a
 * secret its size) and gives the same one back to free it. */
void *slab_sized_alloc(Slab classes[], size_t step, size_t size);
void slab_sized_free(Slab classes[], size_t step, void *p, size_t size);

/* Frees every page of s, which must hold no object any more (the slabs
 * of a process live as long as it; a test's do not). */
void slab_done(Slab *s);
