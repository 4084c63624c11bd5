/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * costly-key-peer: a hostile Mandos client whose raw public key is costly
 * to verify with (test-hostile-costly-keys.sh).
 *
 *   costly-key-peer --port PORT --pubkey SPKI.pem [--host ADDR]
 *                   [--connections N] [--seconds S] [--privkey KEY.pem]
 *
 * N threads each connect, send "1\r\n" and play the TLS server with the
 * raw public key of SPKI.pem, over and over, for S seconds (default 10),
 * only ever to ADDR (default 127.0.0.1). Without --privkey the
 * CertificateVerify carries a random number below the modulus, not a
 * signature: the peer spends nothing, while a verifier that checks it still
 * does the whole exponentiation with the public exponent before it sees it
 * is wrong. With --privkey (a PKCS#1 key) the signature is real (GnuTLS then
 * checks it itself, at the same cost). Prints one line: the connections
 * made, the handshakes that completed, and those the server broke off.
 */
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The Mandos client's own priority string (and the server's default). */
#define PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"

static struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        gnutls_certificate_credentials_t cred;
        gnutls_priority_t priority;
        unsigned modulus_bytes;
        double deadline;
        atomic_long connected, completed, broken;
} P;

static void die(const char *what, int gnutls_error) {
        fprintf(stderr, "costly-key-peer: %s%s%s\n", what, gnutls_error ? ": " : "",
                gnutls_error ? gnutls_strerror(gnutls_error) : "");
        exit(1);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A "signature" as long as the modulus and below it (its first byte is 0),
 * so that the verifier cannot refuse it before the exponentiation. */
static int fake_sign(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata, unsigned flags,
                     const gnutls_datum_t *data, gnutls_datum_t *signature) {
        signature->data = gnutls_malloc(P.modulus_bytes);
        if (!signature->data)
                return GNUTLS_E_MEMORY_ERROR;
        signature->size = P.modulus_bytes;
        if (gnutls_rnd(GNUTLS_RND_NONCE, signature->data, P.modulus_bytes) < 0)
                return GNUTLS_E_RANDOM_FAILED;
        signature->data[0] = 0;
        return 0;
}

static int fake_info(gnutls_privkey_t key, unsigned flags, void *userdata) {
        if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
                return GNUTLS_PK_RSA;
        if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
                return (int) P.modulus_bytes * 8;
        if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) {
                unsigned algo = GNUTLS_FLAGS_TO_SIGN_ALGO(flags);
                return algo == GNUTLS_SIGN_RSA_PSS_RSAE_SHA256 || algo == GNUTLS_SIGN_RSA_PSS_RSAE_SHA384 ||
                       algo == GNUTLS_SIGN_RSA_PSS_RSAE_SHA512;
        }
        return GNUTLS_E_UNKNOWN_ALGORITHM;
}

static gnutls_datum_t read_file(const char *path) {
        gnutls_datum_t d = {};
        int r = gnutls_load_file(path, &d);
        if (r < 0)
                die(path, r);
        return d;
}

static void load_key(const char *pub_path, const char *priv_path) {
        gnutls_datum_t pem = read_file(pub_path);
        gnutls_pubkey_t pub;
        gnutls_privkey_t priv;
        gnutls_pcert_st *pcert = calloc(1, sizeof(*pcert));
        unsigned bits = 0;
        int r;

        if (!pcert)
                die("out of memory", 0);
        if ((r = gnutls_pubkey_init(&pub)) < 0 || (r = gnutls_pubkey_import(pub, &pem, GNUTLS_X509_FMT_PEM)) < 0)
                die("reading the public key", r);
        if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_RSA)
                die("the public key is not RSA", 0);
        P.modulus_bytes = (bits + 7) / 8;
        gnutls_free(pem.data);

        if ((r = gnutls_privkey_init(&priv)) < 0)
                die("privkey", r);
        if (priv_path) {
                gnutls_datum_t key = read_file(priv_path);
                r = gnutls_privkey_import_x509_raw(priv, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
                gnutls_free(key.data);
        } else
                r = gnutls_privkey_import_ext4(priv, NULL, fake_sign, fake_sign, NULL, NULL, fake_info, 0);
        if (r < 0)
                die("loading the private key", r);
        if ((r = gnutls_pcert_import_rawpk(pcert, pub, 0)) < 0 ||
            (r = gnutls_certificate_allocate_credentials(&P.cred)) < 0)
                die("credentials", r);
        /* No test signature when loading: the fake one would not match. */
        gnutls_certificate_set_flags(P.cred, GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
        /* The credentials own pcert's contents and the key from here on. */
        if ((r = gnutls_certificate_set_key(P.cred, NULL, 0, pcert, 1, priv)) < 0)
                die("credentials", r);
        free(pcert);
}

static int connect_peer(void) {
        struct timeval tv = { 10, 0 };
        int one = 1, fd = socket(P.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *) &P.addr, P.addr_len) < 0 || write(fd, "1\r\n", 3) != 3) {
                close(fd);
                return -1;
        }
        return fd;
}

/* One connection, up to the end of the handshake. */
static void attempt(void) {
        gnutls_session_t s;
        int fd, r;

        fd = connect_peer();
        if (fd < 0) {
                usleep(10000); /* the server is not accepting: no busy loop */
                return;
        }
        atomic_fetch_add(&P.connected, 1);
        if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_ENABLE_RAWPK | GNUTLS_NO_TICKETS) < 0)
                die("gnutls_init", 0);
        if ((r = gnutls_priority_set(s, P.priority)) < 0 ||
            (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, P.cred)) < 0)
                die("session", r);
        gnutls_transport_set_int(s, fd);
        do
                r = gnutls_handshake(s);
        while (r < 0 && !gnutls_error_is_fatal(r) && r != GNUTLS_E_AGAIN);
        if (r == 0) {
                atomic_fetch_add(&P.completed, 1);
                (void) gnutls_bye(s, GNUTLS_SHUT_WR);
        } else if (atomic_fetch_add(&P.broken, 1) == 0)
                fprintf(stderr, "costly-key-peer: first handshake broken off: %s\n", gnutls_strerror(r));
        gnutls_deinit(s);
        close(fd);
}

static void *worker(void *arg) {
        while (now_s() < P.deadline)
                attempt();
        return NULL;
}

static void resolve(const char *host, const char *port) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV },
                        *ai;

        if (getaddrinfo(host, port, &hints, &ai) != 0)
                die("bad --host or --port", 0);
        memcpy(&P.addr, ai->ai_addr, ai->ai_addrlen);
        P.addr_len = ai->ai_addrlen;
        freeaddrinfo(ai);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'h' },
                { "port", required_argument, NULL, 'p' },
                { "pubkey", required_argument, NULL, 'k' },
                { "privkey", required_argument, NULL, 'K' },
                { "connections", required_argument, NULL, 'n' },
                { "seconds", required_argument, NULL, 's' },
                {},
        };
        const char *host = "127.0.0.1", *port = NULL, *pub = NULL, *priv = NULL;
        long n = 16;
        double seconds = 10;
        pthread_t *threads;
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'h': host = optarg; break;
                case 'p': port = optarg; break;
                case 'k': pub = optarg; break;
                case 'K': priv = optarg; break;
                case 'n': n = strtol(optarg, NULL, 10); break;
                case 's': seconds = strtod(optarg, NULL); break;
                default: die("usage: costly-key-peer --port PORT --pubkey SPKI.pem [--host ADDR] "
                             "[--connections N] [--seconds S] [--privkey KEY.pem]", 0);
                }
        }
        if (!port || !pub || n < 1 || n > 1000 || seconds <= 0 || seconds > 600 || optind != argc)
                die("usage: costly-key-peer --port PORT --pubkey SPKI.pem [--host ADDR] "
                    "[--connections N] [--seconds S] [--privkey KEY.pem]", 0);
        resolve(host, port);
        if ((r = gnutls_priority_init(&P.priority, PRIORITY, NULL)) < 0)
                die("priority", r);
        load_key(pub, priv);

        threads = calloc(n, sizeof(*threads));
        if (!threads)
                die("out of memory", 0);
        P.deadline = now_s() + seconds;
        for (long i = 0; i < n; i++)
                if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
                        die("pthread_create failed", 0);
        for (long i = 0; i < n; i++)
                pthread_join(threads[i], NULL);
        printf("connected %ld completed %ld broken %ld\n", atomic_load(&P.connected), atomic_load(&P.completed),
               atomic_load(&P.broken));
        free(threads);
        gnutls_certificate_free_credentials(P.cred);
        gnutls_priority_deinit(P.priority);
        return fflush(stdout) == 0 ? 0 : 1;
}
