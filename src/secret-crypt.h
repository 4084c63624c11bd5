/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Encryption at rest of a secret set at run time (D-Bus Secret), for the
 * state file: OpenPGP symmetric encryption through GPGME, with a
 * passphrase derived from the client's secret in clients.conf, as the
 * reference does (SPEC §6.2). So the state file alone never yields a
 * secret: reading it back needs clients.conf too, and editing a client's
 * secret in clients.conf makes its old run-time secret unrecoverable
 * (the file's secret wins). And what it protects is itself OpenPGP
 * ciphertext for the host's own key. */

#include <stddef.h>
#include <stdint.h>

/* Both return 0 and a malloc'd buffer (the plaintext one wiped by the
 * caller), or a negative errno; *ret_error describes a GPGME failure. */
int secret_encrypt(const uint8_t *config_secret, size_t config_size, const uint8_t *plain, size_t size,
                   uint8_t **ret, size_t *ret_size, const char **ret_error);
int secret_decrypt(const uint8_t *config_secret, size_t config_size, const uint8_t *cipher, size_t size,
                   uint8_t **ret, size_t *ret_size, const char **ret_error);
