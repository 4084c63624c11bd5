/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "tls.h"

#include <gnutls/abstract.h>

#include "hex.h"
#include "util.h"

/* GnuTLS's codes stop at this file: callers get -errno, and GnuTLS's text
 * where they log why. */
static int errno_from_gnutls(int r) {
        switch (r) {
        case GNUTLS_E_MEMORY_ERROR:
                return -ENOMEM;
        case GNUTLS_E_INVALID_REQUEST:
                return -EINVAL;
        default:
                return -EPROTO;
        }
}

int tls_context_init(TlsContext *t, const char *priority, const char **ret_error_pos) {
        int r;

        *t = (TlsContext) {};
        /* No certificate, key, trust store or DH parameters: the Mandos
         * server proves nothing about itself; the peer proves its key. */
        r = gnutls_certificate_allocate_credentials(&t->credentials);
        if (r < 0)
                return errno_from_gnutls(r);
        r = gnutls_priority_init(&t->priority, priority, ret_error_pos);
        if (r < 0) {
                tls_context_done(t);
                return errno_from_gnutls(r);
        }
        return 0;
}

void tls_context_done(TlsContext *t) {
        if (t->priority)
                gnutls_priority_deinit(t->priority);
        if (t->credentials)
                gnutls_certificate_free_credentials(t->credentials);
        *t = (TlsContext) {};
}

int tls_priority_allows_rawpk(const char *priority) {
        gnutls_priority_t p;
        const unsigned *types = NULL;
        int n, r = 0;

        n = gnutls_priority_init(&p, priority, NULL);
        if (n < 0)
                return errno_from_gnutls(n);
        /* We are the TLS client: what matters is the type the server side (the peer) may send. */
        n = gnutls_priority_certificate_type_list2(p, &types, GNUTLS_CTYPE_SERVER);
        for (int i = 0; i < n; i++)
                if (types[i] == GNUTLS_CRT_RAWPK)
                        r = 1;
        gnutls_priority_deinit(p);
        return r;
}

static int key_cost_check(gnutls_pubkey_t key, const char **ret_why) {
        gnutls_datum_t n = {}, e = {};
        unsigned bits = 0;
        int r;

        switch (gnutls_pubkey_get_pk_algorithm(key, &bits)) {
        case GNUTLS_PK_EDDSA_ED25519:
        case GNUTLS_PK_EDDSA_ED448:
        case GNUTLS_PK_ECDSA: /* only the named curves GnuTLS knows: P-256 to P-521 */
                return 0;
        case GNUTLS_PK_RSA:
        case GNUTLS_PK_RSA_PSS:
                /* A check costs about bits(n)^2 * bits(e): bound both. */
                if (bits > TLS_RSA_MODULUS_BITS_MAX) {
                        *ret_why = "RSA modulus above 16384 bits";
                        return -EKEYREJECTED;
                }
                r = gnutls_pubkey_export_rsa_raw2(key, &n, &e, GNUTLS_EXPORT_FLAG_NO_LZ);
                if (r < 0) {
                        *ret_why = "unreadable RSA key";
                        return -EBADMSG;
                }
                if (e.size > TLS_RSA_EXPONENT_BYTES_MAX) {
                        *ret_why = "RSA public exponent above 2^32";
                        r = -EKEYREJECTED;
                }
                gnutls_free(n.data);
                gnutls_free(e.data);
                return r;
        default:
                /* DSA (whose cost grows with its modulus; no TLS 1.3 peer can sign
                 * with it), GOST, and whatever GnuTLS may add later. */
                *ret_why = "key algorithm not accepted";
                return -EKEYREJECTED;
        }
}

/* The key of a raw public key (a SubjectPublicKeyInfo) or of an X.509
 * certificate, as the peer sent it. */
static int check_der(const gnutls_datum_t *der, gnutls_certificate_type_t type, const char **ret_why) {
        gnutls_pubkey_t key;
        int r;

        *ret_why = NULL;
        r = gnutls_pubkey_init(&key);
        if (r < 0) {
                *ret_why = gnutls_strerror(r);
                return errno_from_gnutls(r);
        }
        if (type == GNUTLS_CRT_X509)
                r = gnutls_pubkey_import_x509_raw(key, der, GNUTLS_X509_FMT_DER, 0);
        else
                r = gnutls_pubkey_import(key, der, GNUTLS_X509_FMT_DER);
        if (r < 0) {
                *ret_why = "unreadable key";
                r = -EBADMSG;
        } else
                r = key_cost_check(key, ret_why);
        gnutls_pubkey_deinit(key);
        return r;
}

int tls_key_cost_check(const gnutls_datum_t *spki, const char **ret_why) {
        return check_der(spki, GNUTLS_CRT_RAWPK, ret_why);
}

/* Refuse a costly peer key as soon as the peer has presented it, before
 * GnuTLS checks any signature with it (the CertificateVerify comes next in
 * TLS 1.3, the ServerKeyExchange in TLS 1.2). Called for every handshake
 * message sent or received: it checks once, when the key first shows up.
 * The session's pointer keeps the outcome: key_accepted, or the reason for
 * the refusal (a static string). */
static const char key_accepted[] = "";

static int key_cost_hook(gnutls_session_t s, unsigned htype, unsigned when, unsigned incoming,
                         const gnutls_datum_t *msg) {
        const gnutls_datum_t *peers;
        const char *why = NULL;
        unsigned n = 0;
        int r;

        if (gnutls_session_get_ptr(s) == key_accepted)
                return 0;
        if (gnutls_session_get_ptr(s))
                return GNUTLS_E_CERTIFICATE_ERROR; /* refused already */
        peers = gnutls_certificate_get_peers(s, &n);
        if (!peers || n == 0)
                return 0;
        /* An X.509 peer (if the priority string lets one in) is checked too:
         * tls_peer_key_id() refuses it only after its signature was checked. */
        r = check_der(&peers[0], gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS), &why);
        if (r < 0) {
                gnutls_session_set_ptr(s, (void *) why);
                return GNUTLS_E_CERTIFICATE_ERROR; /* to GnuTLS, which ends the handshake */
        }
        gnutls_session_set_ptr(s, (void *) key_accepted);
        return 0;
}

const char *tls_session_refused_key(gnutls_session_t s) {
        const char *why = gnutls_session_get_ptr(s);
        return why == key_accepted ? NULL : why;
}

int tls_session_new(TlsContext *t, int fd, gnutls_session_t *ret) {
        gnutls_session_t s;
        int r;

        /* One key share, for the first group of the priority string (with the
         * default priority the one the Mandos client picks too), instead of
         * GnuTLS's default two: a key generation saved on every fetch (bench/).
         * A peer that wants another group costs a HelloRetryRequest. */
        r = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_TICKETS | GNUTLS_ENABLE_RAWPK | GNUTLS_NONBLOCK |
                                GNUTLS_KEY_SHARE_TOP);
        if (r < 0)
                return errno_from_gnutls(r);
        r = gnutls_priority_set(s, t->priority);
        if (r >= 0)
                r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->credentials);
        if (r < 0) {
                gnutls_deinit(s);
                return errno_from_gnutls(r);
        }
        gnutls_handshake_set_private_extensions(s, 1);
        gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_BOTH, key_cost_hook);
        gnutls_transport_set_int(s, fd);
        *ret = s;
        return 0;
}

/* Returns 0 or a GnuTLS code (for its text in the log). */
static int key_id_of(const gnutls_datum_t *der, char ret[KEY_ID_HEX_SIZE]) {
        gnutls_pubkey_t key;
        unsigned char id[32];
        size_t id_size = sizeof(id);
        int r;

        r = gnutls_pubkey_init(&key);
        if (r < 0)
                return r;
        r = gnutls_pubkey_import(key, der, GNUTLS_X509_FMT_DER);
        if (r >= 0)
                r = gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &id_size);
        gnutls_pubkey_deinit(key);
        if (r < 0)
                return r;
        if (id_size != sizeof(id))
                return GNUTLS_E_INTERNAL_ERROR;
        hex_encode(ret, id, id_size, true);
        return 0;
}

int tls_key_id_from_spki(const gnutls_datum_t *der, char ret[KEY_ID_HEX_SIZE]) {
        int r = key_id_of(der, ret);
        return r < 0 ? errno_from_gnutls(r) : 0;
}

int tls_peer_key_id(gnutls_session_t s, char ret[KEY_ID_HEX_SIZE], const char **ret_why) {
        const gnutls_datum_t *peers;
        unsigned n = 0;
        int r;

        if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_RAWPK) {
                *ret_why = "the peer did not present a raw public key";
                return -EKEYREJECTED;
        }
        peers = gnutls_certificate_get_peers(s, &n);
        if (!peers || n == 0) {
                *ret_why = "the peer presented no key";
                return -ENOKEY;
        }
        r = key_id_of(&peers[0], ret);
        if (r < 0) {
                *ret_why = gnutls_strerror(r);
                return errno_from_gnutls(r);
        }
        return 0;
}
