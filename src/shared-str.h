/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once
/* The strings of clients' settings (src/client-settings.h), and the
 * checker command and D-Bus path a client keeps: at 100,000 clients,
 * half a million small strings, which malloc() would round up and give
 * a header each (a 7-byte name takes 32 bytes, a 65-byte key ID 80).
 *
 * - One copy of a string many hold the same: "" (an unset host, key ID or
 *   fingerprint) and a value two clients read in a row both have (the
 *   checker command of a whole fleet, from clients.conf's [DEFAULT]). Such
 *   a string is registered once and never freed; at most SHARED_STR_MAX
 *   are, and what they hold lives as long as the process.
 * - Any other string up to SHARED_STR_SMALL bytes (its NUL included) is
 *   carved out of pages in slots of a multiple of 8 bytes, with no header;
 *   a freed slot goes to the next string of its size. Longer ones are
 *   malloc()'s. Which of the two a string is follows from its length.
 *
 * So every such string is made with shared_str_dup() or shared_str_take()
 * and released with shared_str_free(), never strdup() or free(). Main
 * thread only. */
#include <stdbool.h>
#include <stddef.h>

#define SHARED_STR_MAX 32
#define SHARED_STR_SMALL 128

/* Is s one of the registered strings? */
bool shared_str_is(const char *s);
/* s itself if registered, the registered one if equal, else a copy; NULL
 * on ENOMEM. */
char *shared_str_dup(const char *s);
/* The same from a malloc()'d s, which it frees (NULL stays NULL). */
char *shared_str_take(char *s);
/* Releases s (NULL is fine); returns NULL. */
char *shared_str_free(char *s);
/* Takes s (malloc()'d), a value read for one setting, and *last, what the
 * previous client read had for it: as shared_str_take(), and when both
 * are the same the value is registered now, if there is room. *last then
 * holds the value (the reader releases it with shared_str_free()). NULL
 * on ENOMEM. */
char *shared_str_read(char *s, char **last);
