/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Bytes as hexadecimal text: the digest-derived passphrases of the state
 * file (secret-crypt.c) in lower case, and the key ID that
 * mandos-clients.conf(5) calls the key_id in upper case (tls.c). */

#include <stdbool.h>
#include <stddef.h>

/* The hex digit of the low four bits of x. */
char hexchar(unsigned x, bool upper);

/* Write 2 * size digits and a NUL at out; returns the pointer to the NUL,
 * as stpcpy() does, so that text can follow. */
char *hex_encode(char *out, const void *data, size_t size, bool upper);

/* The lower-case digits of data, malloc'd, or NULL on ENOMEM. */
char *hexmem(const void *data, size_t size);
