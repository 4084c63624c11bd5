/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* GnuTLS as the Mandos protocol uses it (SPEC §3.3, §3.4): the server is
 * the TLS *client*, has no key of its own, and identifies the peer by the
 * SHA-256 key ID of the raw public key the peer presents. */

#include <gnutls/gnutls.h>

#define KEY_ID_HEX_SIZE 65  /* 64 upper-case hex digits and NUL */

typedef struct TlsContext {
        gnutls_certificate_credentials_t credentials;
        gnutls_priority_t priority;
} TlsContext;

/* Compile the priority string once. Returns 0, or a negative GnuTLS error
 * with *ret_error_pos pointing into priority where it went wrong. */
int tls_context_init(TlsContext *t, const char *priority, const char **ret_error_pos);
void tls_context_done(TlsContext *t);

/* Whether a priority string lets peers present raw public keys, which is
 * how every current client proves itself. Returns 1, 0, or a negative
 * GnuTLS error for a string that does not compile. */
int tls_priority_allows_rawpk(const char *priority);

/* A non-blocking client session on fd. Returns 0 or a GnuTLS error. */
int tls_session_new(TlsContext *t, int fd, gnutls_session_t *ret);

/* The key ID of a DER SubjectPublicKeyInfo: SHA-256, upper-case hex.
 * Returns 0 or a GnuTLS error. */
int tls_key_id_from_spki(const gnutls_datum_t *der, char ret[KEY_ID_HEX_SIZE]);

/* The key ID of the peer of a completed handshake. Returns 0, or a
 * negative GnuTLS error with *ret_why describing it for the log. */
int tls_peer_key_id(gnutls_session_t s, char ret[KEY_ID_HEX_SIZE], const char **ret_why);
