/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * handshake-rate: how many Mandos-style TLS handshakes one core can do.
 *
 *   handshake-rate [--seconds S]
 *
 * Both ends live in this one thread, over a socketpair: the TLS server
 * presents a raw Ed25519 public key (the client host's role), the TLS
 * client has no key and computes the SHA-256 key ID of the key it got (the
 * Mandos server's role).  The two handshakes are driven alternately until
 * both complete; then both sessions and sockets are thrown away and the
 * next pair starts.  Prints one line of JSON:
 *
 *   {"handshakes": N, "seconds": S.SSS, "per_second": R.R}
 *
 * The number covers both ends' work, so it is a ceiling for what a server
 * could do per core if its peers were free.
 */

#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"
#define KEY_ID_SIZE 32          /* bytes of a SHA-256 key ID */

struct tls_setup {
        gnutls_certificate_credentials_t server_cred;   /* holds the raw key */
        gnutls_certificate_credentials_t client_cred;   /* empty */
        gnutls_priority_t priority;
        unsigned char key_id[KEY_ID_SIZE];              /* what the client must find */
};

static void usage(FILE *f) {
        fprintf(f, "Usage: handshake-rate [--seconds S]\n");
}

static void die_tls(const char *what, int r) {
        fprintf(stderr, "handshake-rate: %s: %s\n", what, gnutls_strerror(r));
        exit(1);
}

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* A fresh Ed25519 key, loaded as a raw public key into the server's credentials. */
static void setup_server_key(struct tls_setup *t) {
        gnutls_privkey_t priv;
        gnutls_pubkey_t pub;
        gnutls_pcert_st pcert;
        size_t id_size = sizeof(t->key_id);
        int r;

        if ((r = gnutls_privkey_init(&priv)) < 0 ||
            (r = gnutls_privkey_generate2(priv, GNUTLS_PK_EDDSA_ED25519,
                                          GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0, NULL, 0)) < 0)
                die_tls("generating the Ed25519 key", r);
        if ((r = gnutls_pubkey_init(&pub)) < 0 ||
            (r = gnutls_pubkey_import_privkey(pub, priv, 0, 0)) < 0 ||
            (r = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, t->key_id, &id_size)) < 0)
                die_tls("deriving the public key", r);
        /* pcert takes pub; the credentials take pcert's contents and priv. */
        if ((r = gnutls_pcert_import_rawpk(&pcert, pub, 0)) < 0)
                die_tls("importing the raw public key", r);
        if ((r = gnutls_certificate_allocate_credentials(&t->server_cred)) < 0 ||
            (r = gnutls_certificate_set_key(t->server_cred, NULL, 0, &pcert, 1, priv)) < 0)
                die_tls("setting the server key", r);
}

static void setup(struct tls_setup *t) {
        const char *where = NULL;
        int r;

        setup_server_key(t);
        if ((r = gnutls_certificate_allocate_credentials(&t->client_cred)) < 0)
                die_tls("allocating client credentials", r);
        if ((r = gnutls_priority_init(&t->priority, PRIORITY, &where)) < 0) {
                fprintf(stderr, "handshake-rate: priority string, at '%s':\n", where ? where : "");
                die_tls("priority", r);
        }
}

static void teardown(struct tls_setup *t) {
        gnutls_priority_deinit(t->priority);
        gnutls_certificate_free_credentials(t->client_cred);
        gnutls_certificate_free_credentials(t->server_cred);
}

static gnutls_session_t new_session(struct tls_setup *t, unsigned flags,
                                    gnutls_certificate_credentials_t cred, int fd) {
        gnutls_session_t s;
        int r;

        if ((r = gnutls_init(&s, flags | GNUTLS_NONBLOCK)) < 0 ||
            (r = gnutls_priority_set(s, t->priority)) < 0 ||
            (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred)) < 0)
                die_tls("creating a session", r);
        gnutls_transport_set_int(s, fd);
        return s;
}

/* The Mandos server's side of the work after the handshake: the key ID of
 * the peer's raw key, checked against the one we generated. */
static void check_peer_key(struct tls_setup *t, gnutls_session_t s) {
        const gnutls_datum_t *peers;
        unsigned n = 0;
        gnutls_pubkey_t key;
        unsigned char id[KEY_ID_SIZE];
        size_t id_size = sizeof(id);
        int r;

        if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_RAWPK)
                die_tls("peer certificate type", GNUTLS_E_CERTIFICATE_ERROR);
        peers = gnutls_certificate_get_peers(s, &n);
        if (!peers || n == 0)
                die_tls("peer key", GNUTLS_E_NO_CERTIFICATE_FOUND);
        if ((r = gnutls_pubkey_init(&key)) < 0 ||
            (r = gnutls_pubkey_import(key, &peers[0], GNUTLS_X509_FMT_DER)) < 0 ||
            (r = gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &id_size)) < 0)
                die_tls("peer key ID", r);
        gnutls_pubkey_deinit(key);
        if (id_size != sizeof(id) || memcmp(id, t->key_id, sizeof(id)) != 0)
                die_tls("peer key ID mismatch", GNUTLS_E_CERTIFICATE_ERROR);
}

/* One step of one side's handshake: true once it has completed. */
static bool step(gnutls_session_t s, const char *side) {
        int r = gnutls_handshake(s);

        if (r == 0)
                return true;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                return false;
        fprintf(stderr, "handshake-rate: %s handshake: %s\n", side, gnutls_strerror(r));
        if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED)
                fprintf(stderr, "handshake-rate: alert: %s\n",
                        gnutls_alert_get_name(gnutls_alert_get(s)));
        exit(1);
}

/* A whole connection: socketpair, both handshakes, key ID, teardown. */
static void one_handshake(struct tls_setup *t) {
        gnutls_session_t server, client;
        bool server_done = false, client_done = false;
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
                fprintf(stderr, "handshake-rate: socketpair: %m\n");
                exit(1);
        }
        server = new_session(t, GNUTLS_SERVER | GNUTLS_ENABLE_RAWPK, t->server_cred, fds[0]);
        client = new_session(t, GNUTLS_CLIENT | GNUTLS_NO_TICKETS | GNUTLS_ENABLE_RAWPK,
                             t->client_cred, fds[1]);
        gnutls_handshake_set_private_extensions(client, 1);

        /* The client speaks first; each side runs until it would block. */
        while (!server_done || !client_done) {
                if (!client_done)
                        client_done = step(client, "client");
                if (!server_done)
                        server_done = step(server, "server");
        }
        check_peer_key(t, client);

        gnutls_deinit(client);
        gnutls_deinit(server);
        close(fds[0]);
        close(fds[1]);
}

static double parse_seconds(const char *s) {
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno || end == s || *end || !(d > 0) || d > 1e6) {
                fprintf(stderr, "handshake-rate: invalid --seconds '%s'\n", s);
                usage(stderr);
                exit(2);
        }
        return d;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "seconds", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct tls_setup t = {};
        double seconds = 5, start, elapsed;
        unsigned long count = 0;
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's': seconds = parse_seconds(optarg); break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }

        setup(&t);
        start = now();
        do {
                one_handshake(&t);
                count++;
                elapsed = now() - start;
        } while (elapsed < seconds);
        teardown(&t);

        printf("{\"handshakes\": %lu, \"seconds\": %.3f, \"per_second\": %.1f}\n",
               count, elapsed, (double) count / elapsed);
        return 0;
}
