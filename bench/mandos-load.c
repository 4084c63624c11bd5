/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * mandos-load: the client side of the Mandos wire protocol, as load.
 *
 *   mandos-load keygen --count N [--secret-size BYTES]
 *       Writes N synthetic clients to stdout, one per line:
 *       KEYID PRIV_HEX PUB_HEX SECRET_HEX (a fresh Ed25519 key, its SHA-256
 *       key ID as the server computes it, and random secret bytes).
 *
 *   mandos-load run --keys FILE [--host ADDR] --port PORT [--clients N]
 *       [--concurrency C] (--seconds S | --count N) [--timeout S]
 *       Fetches secrets with C connections at a time, the first N clients of
 *       FILE in turn, and prints one line of JSON: completed and failed
 *       fetches, wrong secrets, rate and latency percentiles.
 *
 * Each fetch is what Debian's mandos-client does on the wire: connect, send
 * "1\r\n", be the TLS server with a raw Ed25519 public key, read the secret
 * until the server closes. It skips the OpenPGP decryption that follows (about
 * 120 ms of the real client's own CPU, which would hide the server), and
 * checks the bytes received are the client's secret. The latency of a fetch
 * runs from connect() to the end of the secret.
 */
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"

static _Noreturn void die(const char *what, int gnutls_error) {
        if (gnutls_error)
                fprintf(stderr, "mandos-load: %s: %s\n", what, gnutls_strerror(gnutls_error));
        else
                fprintf(stderr, "mandos-load: %s\n", what);
        exit(1);
}

static void usage(void) {
        fputs("usage: mandos-load keygen --count N [--secret-size BYTES]\n"
              "       mandos-load run --keys FILE [--host ADDR] --port PORT [--clients N]\n"
              "                       [--concurrency C] (--seconds S | --count N) [--timeout S]\n",
              stderr);
        exit(2);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put_hex(FILE *f, const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%02x", p[i]);
}

/* ------------------------------------------------------------------ keygen */

static void keygen_one(size_t secret_size, unsigned char *secret) {
        gnutls_x509_privkey_t x;
        gnutls_privkey_t priv;
        gnutls_pubkey_t pub;
        gnutls_ecc_curve_t curve;
        gnutls_datum_t px = {}, py = {}, pk = {};
        unsigned char id[32];
        size_t id_size = sizeof(id);
        int r;

        if ((r = gnutls_x509_privkey_init(&x)) < 0 ||
            (r = gnutls_x509_privkey_generate(x, GNUTLS_PK_EDDSA_ED25519, 0, 0)) < 0 ||
            (r = gnutls_x509_privkey_export_ecc_raw(x, &curve, &px, &py, &pk)) < 0)
                die("generating a key", r);
        if ((r = gnutls_privkey_init(&priv)) < 0 ||
            (r = gnutls_privkey_import_x509(priv, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0 ||
            (r = gnutls_pubkey_init(&pub)) < 0 ||
            (r = gnutls_pubkey_import_privkey(pub, priv, 0, 0)) < 0 ||
            (r = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, &id_size)) < 0)
                die("computing a key ID", r);
        if (px.size != 32 || pk.size != 32)
                die("unexpected Ed25519 key size", 0);
        if ((r = gnutls_rnd(GNUTLS_RND_NONCE, secret, secret_size)) < 0)
                die("random secret", r);

        put_hex(stdout, id, id_size);
        putchar(' ');
        put_hex(stdout, pk.data, pk.size);
        putchar(' ');
        put_hex(stdout, px.data, px.size);
        putchar(' ');
        put_hex(stdout, secret, secret_size);
        putchar('\n');

        gnutls_free(px.data);
        gnutls_free(py.data);
        gnutls_memset(pk.data, 0, pk.size);
        gnutls_free(pk.data);
        gnutls_pubkey_deinit(pub);
        gnutls_privkey_deinit(priv);
}

static int cmd_keygen(int argc, char **argv) {
        static const struct option opts[] = {
                { "count", required_argument, NULL, 'n' },
                { "secret-size", required_argument, NULL, 's' },
                {},
        };
        long count = -1, secret_size = 600;
        unsigned char *secret;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'n')
                        count = strtol(optarg, NULL, 10);
                else if (c == 's')
                        secret_size = strtol(optarg, NULL, 10);
                else
                        usage();
        }
        if (count < 0 || secret_size < 1 || secret_size > 1 << 20 || optind != argc)
                usage();
        secret = malloc(secret_size);
        if (!secret)
                die("out of memory", 0);
        for (long i = 0; i < count; i++)
                keygen_one(secret_size, secret);
        free(secret);
        return fflush(stdout) == 0 ? 0 : 1;
}

/* --------------------------------------------------------------------- run */

typedef struct {
        gnutls_certificate_credentials_t cred;
        unsigned char *secret;
        size_t secret_size;
} LoadKey;

typedef struct {
        double *v;
        size_t n, cap;
} Latencies;

static struct {
        LoadKey *keys;
        size_t n_keys;
        struct sockaddr_storage addr;
        socklen_t addr_len;
        gnutls_priority_t priority;
        double deadline;        /* run until then, when count is 0 */
        long count;             /* or this many fetches */
        double timeout;         /* per fetch */
        atomic_long next;       /* the next fetch to start */
        atomic_long failed, wrong;
} L;

static int unhex(const char *s, size_t len, unsigned char *out) {
        for (size_t i = 0; i < len / 2; i++) {
                unsigned v;
                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -1;
                out[i] = v;
        }
        return 0;
}

/* One line of the keys file to credentials with its raw public key, and the expected secret. */
static void load_key(char *line, LoadKey *k) {
        char *id = strtok(line, " \n"), *priv = strtok(NULL, " \n"), *pubx = strtok(NULL, " \n"),
             *sec = strtok(NULL, " \n");
        unsigned char kb[32], xb[32];
        gnutls_datum_t kd = { kb, 32 }, xd = { xb, 32 };
        gnutls_privkey_t key;
        gnutls_pubkey_t pub;
        gnutls_pcert_st *pcert;
        int r;

        if (!id || !priv || !pubx || !sec || strlen(priv) != 64 || strlen(pubx) != 64 || strlen(sec) % 2 ||
            unhex(priv, 64, kb) < 0 || unhex(pubx, 64, xb) < 0)
                die("malformed line in the keys file", 0);
        k->secret_size = strlen(sec) / 2;
        k->secret = malloc(k->secret_size);
        pcert = calloc(1, sizeof(*pcert));
        if (!k->secret || !pcert)
                die("out of memory", 0);
        if (unhex(sec, strlen(sec), k->secret) < 0)
                die("malformed secret in the keys file", 0);
        if ((r = gnutls_privkey_init(&key)) < 0 ||
            (r = gnutls_privkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &xd, NULL, &kd)) < 0 ||
            (r = gnutls_pubkey_init(&pub)) < 0 ||
            (r = gnutls_pubkey_import_ecc_raw(pub, GNUTLS_ECC_CURVE_ED25519, &xd, NULL)) < 0 ||
            (r = gnutls_pcert_import_rawpk(pcert, pub, 0)) < 0 ||
            (r = gnutls_certificate_allocate_credentials(&k->cred)) < 0 ||
            /* The credentials own pcert's contents and the key from here on. */
            (r = gnutls_certificate_set_key(k->cred, NULL, 0, pcert, 1, key)) < 0)
                die("loading a key", r);
        free(pcert);
        gnutls_memset(kb, 0, sizeof(kb));
}

static void load_keys(const char *path, long limit) {
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t size = 0;

        if (!f) {
                perror(path);
                exit(1);
        }
        while ((limit < 0 || (long) L.n_keys < limit) && getline(&line, &size, f) > 0) {
                LoadKey *n = realloc(L.keys, (L.n_keys + 1) * sizeof(*L.keys));
                if (!n)
                        die("out of memory", 0);
                L.keys = n;
                load_key(line, &L.keys[L.n_keys++]);
        }
        free(line);
        fclose(f);
        if (L.n_keys == 0)
                die("no keys loaded", 0);
}

static int connect_peer(void) {
        struct timeval tv = { (time_t) L.timeout, (suseconds_t) ((L.timeout - (time_t) L.timeout) * 1e6) };
        int one = 1;
        int fd = socket(L.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        /* Blocking I/O with a deadline on every call: a hung server is a failed fetch. */
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *) &L.addr, L.addr_len) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* One fetch with key k: 1 if the right secret arrived, 0 if a wrong one, -1 on failure. */
static int fetch(const LoadKey *k, unsigned char *buf, size_t buf_size) {
        gnutls_session_t s = NULL;
        size_t got = 0;
        int fd, r, result = -1;

        fd = connect_peer();
        if (fd < 0)
                return -1;
        if (write(fd, "1\r\n", 3) != 3)
                goto out;
        if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_ENABLE_RAWPK | GNUTLS_NO_TICKETS) < 0) {
                s = NULL;
                goto out;
        }
        if (gnutls_priority_set(s, L.priority) < 0 ||
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, k->cred) < 0)
                goto out;
        gnutls_transport_set_int(s, fd);
        do
                r = gnutls_handshake(s);
        while (r < 0 && !gnutls_error_is_fatal(r) && r != GNUTLS_E_AGAIN);
        if (r < 0)
                goto out;
        for (;;) {
                r = gnutls_record_recv(s, buf + got, buf_size - got);
                if (r == GNUTLS_E_INTERRUPTED)
                        continue;
                if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION)
                        break; /* the server closed: the secret is complete */
                if (r < 0)
                        goto out;
                got += r;
                if (got == buf_size)
                        break; /* more than any secret: wrong */
        }
        result = got == k->secret_size && memcmp(buf, k->secret, got) == 0;
out:
        if (s)
                gnutls_deinit(s);
        close(fd);
        return result;
}

static void *worker(void *arg) {
        Latencies *lat = arg;
        size_t buf_size = 1 << 20;
        unsigned char *buf = malloc(buf_size);

        if (!buf)
                die("out of memory", 0);
        for (;;) {
                long i = atomic_fetch_add(&L.next, 1);
                double t0;
                int r;

                if (L.count > 0 ? i >= L.count : now_s() >= L.deadline)
                        break;
                t0 = now_s();
                r = fetch(&L.keys[i % L.n_keys], buf, buf_size);
                if (r < 0) {
                        atomic_fetch_add(&L.failed, 1);
                        continue;
                }
                if (r == 0)
                        atomic_fetch_add(&L.wrong, 1);
                if (lat->n == lat->cap) {
                        double *n = realloc(lat->v, (lat->cap = lat->cap * 2 + 1024) * sizeof(double));
                        if (!n)
                                die("out of memory", 0);
                        lat->v = n;
                }
                lat->v[lat->n++] = now_s() - t0;
        }
        free(buf);
        return NULL;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* The nearest-rank percentile of a sorted array, in milliseconds. */
static double pct_ms(const double *v, size_t n, double p) {
        size_t i;

        if (n == 0)
                return 0;
        i = (size_t) (p / 100 * n + 0.999999);
        if (i < 1)
                i = 1;
        return v[(i > n ? n : i) - 1] * 1000;
}

static void resolve(const char *host, const char *port) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV },
                        *ai;
        int r = getaddrinfo(host, port, &hints, &ai);

        if (r != 0) {
                fprintf(stderr, "mandos-load: %s port %s: %s\n", host, port, gai_strerror(r));
                exit(2);
        }
        memcpy(&L.addr, ai->ai_addr, ai->ai_addrlen);
        L.addr_len = ai->ai_addrlen;
        freeaddrinfo(ai);
}

static int cmd_run(int argc, char **argv) {
        static const struct option opts[] = {
                { "keys", required_argument, NULL, 'k' },
                { "host", required_argument, NULL, 'h' },
                { "port", required_argument, NULL, 'p' },
                { "clients", required_argument, NULL, 'n' },
                { "concurrency", required_argument, NULL, 'c' },
                { "seconds", required_argument, NULL, 's' },
                { "count", required_argument, NULL, 'N' },
                { "timeout", required_argument, NULL, 't' },
                {},
        };
        const char *keys = NULL, *host = "::1", *port = NULL;
        long clients = -1, concurrency = 1;
        double seconds = 0, t0, elapsed;
        pthread_t *threads;
        Latencies *lat, all = {};
        int c, r;

        L.timeout = 10;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'k': keys = optarg; break;
                case 'h': host = optarg; break;
                case 'p': port = optarg; break;
                case 'n': clients = strtol(optarg, NULL, 10); break;
                case 'c': concurrency = strtol(optarg, NULL, 10); break;
                case 's': seconds = strtod(optarg, NULL); break;
                case 'N': L.count = strtol(optarg, NULL, 10); break;
                case 't': L.timeout = strtod(optarg, NULL); break;
                default: usage();
                }
        }
        if (!keys || !port || concurrency < 1 || concurrency > 10000 || L.timeout <= 0 || optind != argc ||
            (seconds > 0) == (L.count > 0) || seconds < 0 || L.count < 0 || clients == 0)
                usage();
        resolve(host, port);
        if ((r = gnutls_priority_init(&L.priority, PRIORITY, NULL)) < 0)
                die("priority", r);
        load_keys(keys, clients);

        threads = calloc(concurrency, sizeof(*threads));
        lat = calloc(concurrency, sizeof(*lat));
        if (!threads || !lat)
                die("out of memory", 0);
        t0 = now_s();
        L.deadline = t0 + seconds;
        for (long i = 0; i < concurrency; i++)
                if (pthread_create(&threads[i], NULL, worker, &lat[i]) != 0)
                        die("pthread_create failed", 0);
        for (long i = 0; i < concurrency; i++)
                pthread_join(threads[i], NULL);
        elapsed = now_s() - t0;

        for (long i = 0; i < concurrency; i++) {
                double *n = realloc(all.v, (all.n + lat[i].n + 1) * sizeof(double));
                if (!n)
                        die("out of memory", 0);
                all.v = n;
                memcpy(all.v + all.n, lat[i].v, lat[i].n * sizeof(double));
                all.n += lat[i].n;
                free(lat[i].v);
        }
        qsort(all.v, all.n, sizeof(double), cmp_double);
        printf("{\"concurrency\": %ld, \"clients\": %zu, \"completed\": %zu, \"failed\": %ld, \"wrong\": %ld, "
               "\"seconds\": %.3f, \"per_second\": %.1f, \"p50_ms\": %.2f, \"p90_ms\": %.2f, \"p99_ms\": %.2f, "
               "\"max_ms\": %.2f}\n",
               concurrency, L.n_keys, all.n, atomic_load(&L.failed), atomic_load(&L.wrong), elapsed,
               all.n / elapsed, pct_ms(all.v, all.n, 50), pct_ms(all.v, all.n, 90), pct_ms(all.v, all.n, 99),
               all.n ? all.v[all.n - 1] * 1000 : 0);

        free(all.v);
        free(lat);
        free(threads);
        for (size_t i = 0; i < L.n_keys; i++) {
                gnutls_certificate_free_credentials(L.keys[i].cred);
                free(L.keys[i].secret);
        }
        free(L.keys);
        gnutls_priority_deinit(L.priority);
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
        if (argc < 2)
                usage();
        if (strcmp(argv[1], "keygen") == 0)
                return cmd_keygen(argc - 1, argv + 1);
        if (strcmp(argv[1], "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        usage();
}
