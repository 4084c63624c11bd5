/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once
/* The memory of the secrets clients hold: the one from clients.conf (the
 * ClientSettings secret) and one set at run time. Up to SECRET_MEM_SMALL
 * bytes, in slots of a multiple of 16 bytes carved out of pages of their
 * own (src/slab.h): no malloc() header each, and none left among the
 * start-up's short-lived allocations (100,000 secrets were that many
 * islands in the heap, and the holes between them stayed resident).
 * Longer ones are malloc()'s. Which of the two follows from the size, so
 * a secret is made with secret_new() or secret_take() and released with
 * secret_free() and its exact size, never malloc() or free(). Every
 * release wipes the bytes first. Main thread only. */
#include <stddef.h>
#include <stdint.h>

#define SECRET_MEM_SMALL 4096

/* A copy of the size bytes at data (size 0 is fine), or NULL on ENOMEM. */
uint8_t *secret_new(const void *data, size_t size);
/* The same from p, malloc()'d, which it wipes (size bytes) and frees,
 * also on failure. NULL stays NULL. */
uint8_t *secret_take(uint8_t *p, size_t size);
/* Wipes and releases p (NULL is fine), made for size bytes; returns NULL. */
uint8_t *secret_free(uint8_t *p, size_t size);
