/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* GnuTLS as the Mandos protocol uses it (docs/PROTOCOL.md): the server is
 * the TLS *client*, has no key of its own, and identifies the peer by the
 * SHA-256 key ID of the raw public key the peer presents.
 *
 * Failures are negative errno values, GnuTLS's codes converted here (its
 * text, where a caller logs why, in *ret_why). */

#include <gnutls/gnutls.h>

#define KEY_ID_HEX_SIZE 65  /* 64 upper-case hex digits and NUL */

typedef struct TlsContext {
        gnutls_certificate_credentials_t credentials;
        gnutls_priority_t priority;
} TlsContext;

/* Compile the priority string once. Returns 0, or -EINVAL with
 * *ret_error_pos pointing into priority where it went wrong (-ENOMEM). */
int tls_context_init(TlsContext *t, const char *priority, const char **ret_error_pos);
void tls_context_done(TlsContext *t);

/* Whether a priority string lets peers present raw public keys, which is
 * how every current client proves itself. Returns 1, 0, or -errno for a
 * string that does not compile. */
int tls_priority_allows_rawpk(const char *priority);

/* The dearest peer keys accepted (tls_key_cost_check). */
#define TLS_RSA_MODULUS_BITS_MAX 16384
#define TLS_RSA_EXPONENT_BYTES_MAX 4 /* e < 2^32 */

/* Whether checking a signature with the key of a DER SubjectPublicKeyInfo
 * costs little enough to be done on the event loop: Ed25519, Ed448, ECDSA,
 * and RSA up to 16384 bits with a public exponent below 2^32. Returns 0,
 * -EKEYREJECTED (too costly), -EBADMSG (unreadable) or -ENOMEM, with
 * *ret_why set for the log. */
int tls_key_cost_check(const gnutls_datum_t *spki, const char **ret_why);

/* A non-blocking client session on fd. Returns 0 or -errno. Its
 * handshake fails, before any signature is checked, if the peer presents a
 * key tls_key_cost_check() refuses; tls.c owns the session's pointer
 * (gnutls_session_set_ptr) for that. */
int tls_session_new(TlsContext *t, int fd, gnutls_session_t *ret);

/* Why the session's handshake refused the peer's key, or NULL. */
const char *tls_session_refused_key(gnutls_session_t s);

/* The key ID of a DER SubjectPublicKeyInfo: SHA-256, upper-case hex.
 * Returns 0 or -errno (-EPROTO for a key GnuTLS cannot read). */
int tls_key_id_from_spki(const gnutls_datum_t *der, char ret[KEY_ID_HEX_SIZE]);

/* The key ID of the peer of a completed handshake. Returns 0, or -errno
 * (-EKEYREJECTED: not a raw public key; -ENOKEY: none) with *ret_why
 * describing it for the log. */
int tls_peer_key_id(gnutls_session_t s, char ret[KEY_ID_HEX_SIZE], const char **ret_why);
