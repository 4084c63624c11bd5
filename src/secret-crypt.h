/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* Encryption at rest of a secret set at run time (D-Bus Secret), for the
 * state file: OpenPGP symmetric encryption through GPGME, with a
 * passphrase derived from the client's secret in clients.conf (an HMAC with
 * a label of its own, unrelated to anything the state file stores; see
 * docs/STATE.md). So the state file alone never yields a secret: reading it
 * back needs clients.conf too, and editing a client's secret in
 * clients.conf makes its old run-time secret unrecoverable (the file's
 * secret wins). And what it protects is itself OpenPGP ciphertext for the
 * host's own key. */

#include <stddef.h>
#include <stdint.h>

/* How the passphrase is derived: version 2 state files use the HMAC;
 * version 1 files used the SHA-256 of the configured secret (readable only,
 * to migrate them). */
typedef enum SecretKdf {
        SECRET_KDF_LEGACY_SHA256 = 1,
        SECRET_KDF_HMAC = 2,
        /* The reference server's clients.pickle (docs/STATE.md): read only, to import it. */
        SECRET_KDF_REFERENCE = 3,
} SecretKdf;

/* Both return 0 and a malloc'd buffer (the plaintext one wiped by the
 * caller), or a negative errno; *ret_error describes a GPGME failure.
 * Encryption always uses the current derivation. */
int secret_encrypt(const uint8_t *config_secret, size_t config_size, const uint8_t *plain, size_t size,
                   uint8_t **ret, size_t *ret_size, const char **ret_error);
int secret_decrypt(SecretKdf kdf, const uint8_t *config_secret, size_t config_size, const uint8_t *cipher,
                   size_t size, uint8_t **ret, size_t *ret_size, const char **ret_error);
