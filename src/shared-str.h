/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once
/* One copy of a string that many clients' settings hold the same: "" (an
 * unset host, key ID or fingerprint) and a value two clients read in a row
 * both have (the checker command of a whole fleet, from clients.conf's
 * [DEFAULT]). Such a string is registered once and never freed; at most
 * SHARED_STR_MAX are, so the registry stays a few hundred bytes, and what
 * it holds lives as long as the process.
 *
 * Every string setting of a ClientSettings (src/client-settings.h) is
 * released with shared_str_free() and copied with shared_str_dup(): a
 * registered one is shared, any other is the caller's own as before.
 * Main thread only. */
#include <stdbool.h>

#define SHARED_STR_MAX 32

/* Is s one of the registered strings? */
bool shared_str_is(const char *s);
/* s itself if registered, else a copy of it; NULL on ENOMEM. */
char *shared_str_dup(const char *s);
/* Frees s unless it is registered; returns NULL. */
char *shared_str_free(char *s);
/* Takes s (freed if NULL is returned): the registered string equal to it,
 * or s. */
char *shared_str_dedup(char *s);
/* Takes s, a value read for one setting, and *last, the
 * one the previous client had for it: the registered copy when both are
 * the same (registered now if there is room), else s; *last becomes the
 * value returned. The reader frees what *last keeps with
 * shared_str_free(). NULL (s freed) on ENOMEM. */
char *shared_str_read(char *s, char **last);
