/* SPDX-License-Identifier: GPL-3.0-or-later */
#include <gnutls/abstract.h>
#include <stdlib.h>

#include "settings.h"
#include "test.h"
#include "tls.h"

/* A throwaway Ed25519 public key (certtool --generate-privkey
 * --key-type=ed25519, then --pubkey-info) and what
 * `certtool --key-id --hash=sha256` printed for it. */
static const char pubkey_pem[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAjowOho8WVAGgCCYNvGwfx5IbyCVkkXqzcxGh/O+YQbk=\n"
        "-----END PUBLIC KEY-----\n";
static const unsigned char pubkey_der[] = {
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        0x8e, 0x8c, 0x0e, 0x86, 0x8f, 0x16, 0x54, 0x01, 0xa0, 0x08, 0x26, 0x0d,
        0xbc, 0x6c, 0x1f, 0xc7, 0x92, 0x1b, 0xc8, 0x25, 0x64, 0x91, 0x7a, 0xb3,
        0x73, 0x11, 0xa1, 0xfc, 0xef, 0x98, 0x41, 0xb9,
};
static const char certtool_key_id[] = "A4F03EFD8543E4242EE4DFF312ED15380946911C47BFB258BBC12593A3A38641";

static void test_key_id_is_upper_case_sha256_of_spki(void) {
        gnutls_datum_t der = { (unsigned char *) pubkey_der, sizeof(pubkey_der) };
        char id[KEY_ID_HEX_SIZE];

        check_int(tls_key_id_from_spki(&der, id), 0);
        check_streq(id, certtool_key_id);
}

static void test_key_id_from_pem_matches_certtool(void) {
        gnutls_datum_t pem = { (unsigned char *) pubkey_pem, sizeof(pubkey_pem) - 1 }, der;
        char id[KEY_ID_HEX_SIZE];

        check_int(gnutls_pem_base64_decode2("PUBLIC KEY", &pem, &der), 0);
        check_int(tls_key_id_from_spki(&der, id), 0);
        check_streq(id, certtool_key_id);
        gnutls_free(der.data);
}

static void test_key_id_of_garbage_is_an_error(void) {
        unsigned char junk[] = { 0x30, 0x03, 0x01, 0x02 };
        gnutls_datum_t der = { junk, sizeof(junk) };
        char id[KEY_ID_HEX_SIZE];

        check(tls_key_id_from_spki(&der, id) < 0);
        der.size = 0;
        check(tls_key_id_from_spki(&der, id) < 0);
}

static void test_default_priority_compiles(void) {
        TlsContext t;
        const char *pos = NULL;

        check_int(tls_context_init(&t, DEFAULT_PRIORITY, &pos), 0);
        tls_context_done(&t);
        check_int(tls_context_init(&t, "NORMAL", &pos), 0);
        tls_context_done(&t);
}

static void test_bad_priority_is_refused_with_position(void) {
        TlsContext t;
        const char *pos = NULL;

        check(tls_context_init(&t, "SECURE128:+NO-SUCH-THING", &pos) < 0);
        check(pos != NULL);
        check(t.credentials == NULL && t.priority == NULL);
}

static void test_rawpk_detection_follows_the_priority_string(void) {
        check(tls_priority_allows_rawpk(DEFAULT_PRIORITY) == 1);
        /* The OpenPGP-era string of the sample mandos.conf (mandos.conf(5),
         * priority). */
        check(tls_priority_allows_rawpk("SECURE256:!CTYPE-X.509:+CTYPE-OPENPGP:!RSA:+SIGN-DSA-SHA256") != 1);
        check(tls_priority_allows_rawpk("NORMAL") == 0);
}

/* tls_key_cost_check() on a PEM public key file; its reason, or "" if accepted. */
static int cost_check_file(const char *path, const char **ret_why) {
        gnutls_datum_t pem, der;
        int r;

        r = gnutls_load_file(path, &pem);
        if (r < 0) {
                fprintf(stderr, "cannot read %s: %s\n", path, gnutls_strerror(r));
                return -1000;
        }
        r = gnutls_pem_base64_decode2("PUBLIC KEY", &pem, &der);
        gnutls_free(pem.data);
        if (r < 0)
                return -1000;
        r = tls_key_cost_check(&der, ret_why);
        gnutls_free(der.data);
        return r;
}

/* The SPKI of an RSA key with a modulus of `bits` bits (all ones: GnuTLS
 * does not check it is a product of primes) and public exponent e. */
static int cost_check_rsa(unsigned bits, uint64_t e, const char **ret_why) {
        unsigned char *m = malloc(bits / 8), eb[8];
        gnutls_datum_t md = { m, bits / 8 }, ed = { eb, sizeof(eb) }, der = {};
        gnutls_pubkey_t key;
        int r;

        if (!m)
                return -1000;
        memset(m, 0xff, bits / 8);
        for (int i = 0; i < 8; i++)
                eb[i] = (unsigned char) (e >> (56 - 8 * i));
        r = gnutls_pubkey_init(&key);
        if (r >= 0)
                r = gnutls_pubkey_import_rsa_raw(key, &md, &ed);
        if (r >= 0)
                r = gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &der);
        gnutls_pubkey_deinit(key);
        free(m);
        if (r < 0)
                return -1000;
        r = tls_key_cost_check(&der, ret_why);
        gnutls_free(der.data);
        return r;
}

static void test_cheap_keys_are_accepted(void) {
        gnutls_datum_t der = { (unsigned char *) pubkey_der, sizeof(pubkey_der) };
        const char *why = "unset";

        /* Every type Debian's mandos-keygen --tls-keytype makes. */
        check_int(tls_key_cost_check(&der, &why), 0);
        check(why == NULL);
        check_int(cost_check_file("keys/mandos-keygen-rsa.pub.pem", &why), 0);
        check_int(cost_check_file("keys/mandos-keygen-ecdsa.pub.pem", &why), 0);
        check_int(cost_check_file("keys/mandos-keygen-ed448.pub.pem", &why), 0);
        /* The dearest RSA keys accepted: 16384 bits, e just below 2^32. */
        check_int(cost_check_file("../integration/costly-key/dearest-rsa-16384.pub.pem", &why), 0);
        check_int(cost_check_rsa(16384, 65537, &why), 0);
        check_int(cost_check_rsa(16384, UINT32_MAX, &why), 0);
        check_int(cost_check_rsa(2048, 3, &why), 0);
}

static void test_costly_keys_are_refused(void) {
        const char *why = NULL;

        /* e as large as n: some 0.5 s per signature check. */
        check(cost_check_file("../integration/costly-key/costly-rsa-16384.pub.pem", &why) < 0);
        check_streq(why, "RSA public exponent above 2^32");
        why = NULL;
        check(cost_check_rsa(2048, (uint64_t) UINT32_MAX + 2, &why) < 0);
        check_streq(why, "RSA public exponent above 2^32");
        why = NULL;
        check(cost_check_rsa(16384 + 8, 65537, &why) < 0);
        check_streq(why, "RSA modulus above 16384 bits");
}

static void test_dsa_and_unreadable_keys_are_refused(void) {
        unsigned char junk[] = { 0x30, 0x03, 0x01, 0x02 };
        gnutls_datum_t der = { junk, sizeof(junk) };
        const char *why = NULL;

        check(cost_check_file("keys/dsa-2048.pub.pem", &why) < 0);
        check_streq(why, "key algorithm not accepted");
        why = NULL;
        check(tls_key_cost_check(&der, &why) < 0);
        check_streq(why, "unreadable key");
}

TEST_MAIN(TEST(test_key_id_is_upper_case_sha256_of_spki),
          TEST(test_key_id_from_pem_matches_certtool),
          TEST(test_key_id_of_garbage_is_an_error),
          TEST(test_default_priority_compiles),
          TEST(test_bad_priority_is_refused_with_position),
          TEST(test_rawpk_detection_follows_the_priority_string),
          TEST(test_cheap_keys_are_accepted),
          TEST(test_costly_keys_are_refused),
          TEST(test_dsa_and_unreadable_keys_are_refused))
