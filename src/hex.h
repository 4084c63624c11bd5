/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Bytes as hexadecimal text: the digest-derived passphrases of the state
 * file (secret-crypt.c) in lower case, and the key ID that
 * mandos-clients.conf(5) calls the key_id in upper case (tls.c); the
 * secret digest of the state file (state.c, docs/STATE.md), both ways. */

#include <stdbool.h>
#include <stddef.h>

/* The hex digit of the low four bits of x. */
char hexchar(unsigned x, bool upper);

/* Write 2 * size digits and a NUL at out; returns the pointer to the NUL,
 * as stpcpy() does, so that text can follow. */
char *hex_encode(char *out, const void *data, size_t size, bool upper);

/* The lower-case digits of data, malloc'd, or NULL on ENOMEM. */
char *hexmem(const void *data, size_t size);

/* The value of one hex digit (either case), or -EINVAL. */
int unhexchar(char c);

/* Exactly 2 * size hex digits at s (either case, nothing else) into out:
 * 0, or -EINVAL (out then holds no meaning). */
int hex_decode(const char *s, void *out, size_t size);
