/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * limit-server: the minimal server of the Mandos protocol, the benchmark's
 * "limit".  One fork per connection and nothing else: no D-Bus, no
 * checkers, no approval, no logging, no state.  A child reads "1\r\n",
 * does a TLS 1.3 handshake as the TLS *client* (the peer presents a raw
 * Ed25519 public key), looks the peer's key ID up in a table loaded at
 * start, sends the secret and closes.
 *
 *   limit-server --keys FILE --port PORT [--address ADDR]
 *
 * FILE has one line per client: "KEYID PRIV_HEX PUB_HEX SECRET_HEX"; only
 * KEYID and SECRET_HEX are used here.  PORT 0 picks a free port; the port
 * actually bound is printed as "listening on PORT" once ready.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!RSA:!VERS-ALL:+VERS-TLS1.3:%PROFILE_ULTRA"
#define KEY_ID_LEN 64           /* hex digits of a SHA-256 key ID */
#define BACKLOG 4096

struct key {
        char id[KEY_ID_LEN + 1];  /* lowercase hex, NUL-terminated */
        unsigned char *secret;
        size_t secret_len;
};

/* Loaded once before the first fork; children only read them. */
static struct key *keys;
static size_t n_keys;
static gnutls_certificate_credentials_t credentials;
static gnutls_priority_t priority;

static void usage(FILE *f) {
        fprintf(f, "Usage: limit-server --keys FILE --port PORT [--address ADDR]\n");
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

static bool is_key_id(const char *s) {
        if (strlen(s) != KEY_ID_LEN)
                return false;
        for (; *s; s++)
                if (hex_digit(*s) < 0)
                        return false;
        return true;
}

/* Lowercase hex to bytes; NULL if malformed or out of memory. */
static unsigned char *unhex(const char *s, size_t *ret_len) {
        size_t n = strlen(s);
        unsigned char *b;

        if (n == 0 || n % 2)
                return NULL;
        b = malloc(n / 2);
        if (!b)
                return NULL;
        for (size_t i = 0; i < n / 2; i++) {
                int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
                if (hi < 0 || lo < 0) {
                        free(b);
                        return NULL;
                }
                b[i] = (unsigned char) (hi << 4 | lo);
        }
        *ret_len = n / 2;
        return b;
}

static int compare_keys(const void *a, const void *b) {
        return strcmp(((const struct key *) a)->id, ((const struct key *) b)->id);
}

/* Parse one "KEYID PRIV PUB SECRET" line into *k; false if malformed. */
static bool parse_key_line(char *line, struct key *k) {
        char *save = NULL, *field[4];

        for (int i = 0; i < 4; i++) {
                field[i] = strtok_r(i ? NULL : line, " \t\r\n", &save);
                if (!field[i])
                        return false;
        }
        if (strtok_r(NULL, " \t\r\n", &save) || !is_key_id(field[0]))
                return false;
        memcpy(k->id, field[0], KEY_ID_LEN + 1);
        k->secret = unhex(field[3], &k->secret_len);
        return k->secret != NULL;
}

static bool is_blank(const char *s) {
        return s[strspn(s, " \t\r\n")] == '\0';
}

/* Read FILE into the sorted table keys[]; exits on any error. */
static void load_keys(const char *path) {
        FILE *f = fopen(path, "re");
        char *line = NULL;
        size_t size = 0, allocated = 0;
        unsigned lineno = 0;

        if (!f) {
                fprintf(stderr, "limit-server: %s: %m\n", path);
                exit(1);
        }
        while (getline(&line, &size, f) >= 0) {
                lineno++;
                if (is_blank(line))
                        continue;
                if (n_keys == allocated) {
                        allocated = allocated ? 2 * allocated : 1024;
                        keys = realloc(keys, allocated * sizeof(*keys));
                        if (!keys) {
                                fprintf(stderr, "limit-server: out of memory\n");
                                exit(1);
                        }
                }
                if (!parse_key_line(line, &keys[n_keys])) {
                        fprintf(stderr, "limit-server: %s:%u: malformed line\n", path, lineno);
                        exit(1);
                }
                n_keys++;
        }
        free(line);
        fclose(f);
        qsort(keys, n_keys, sizeof(*keys), compare_keys);
}

static const struct key *find_key(const char *id) {
        struct key needle;

        memcpy(needle.id, id, sizeof(needle.id));
        return bsearch(&needle, keys, n_keys, sizeof(*keys), compare_keys);
}

/* ADDR is an IPv6 address, or IPv4 which is mapped (::ffff:a.b.c.d). */
static int open_listener(const char *address, unsigned port) {
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t) port) };
        struct in_addr v4;
        int fd, one = 1, zero = 0;

        if (inet_pton(AF_INET, address, &v4) == 1) {
                sa.sin6_addr.s6_addr[10] = sa.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&sa.sin6_addr.s6_addr[12], &v4, 4);
        } else if (inet_pton(AF_INET6, address, &sa.sin6_addr) != 1) {
                fprintf(stderr, "limit-server: invalid address '%s'\n", address);
                exit(2);
        }
        fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
            bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            listen(fd, BACKLOG) < 0) {
                fprintf(stderr, "limit-server: cannot listen on [%s]:%u: %m\n", address, port);
                exit(1);
        }
        return fd;
}

static unsigned bound_port(int fd) {
        struct sockaddr_in6 sa;
        socklen_t len = sizeof(sa);

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return 0;
        return ntohs(sa.sin6_port);
}

/* The credentials hold nothing: we prove nothing, the peer proves its key. */
static void tls_setup(void) {
        const char *where = NULL;
        int r;

        r = gnutls_certificate_allocate_credentials(&credentials);
        if (r >= 0)
                r = gnutls_priority_init(&priority, PRIORITY, &where);
        if (r < 0) {
                fprintf(stderr, "limit-server: TLS setup: %s%s%s\n", gnutls_strerror(r),
                        where ? " at " : "", where ? where : "");
                exit(1);
        }
}

/* Read the protocol version line; only "1\r\n" is accepted.  The peer sends
 * nothing more until our ClientHello, so reading in bulk is safe. */
static bool read_version(int fd) {
        char buf[16];
        size_t n = 0;

        while (n < sizeof(buf)) {
                ssize_t k = read(fd, buf + n, sizeof(buf) - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                n += (size_t) k;
                if (memchr(buf, '\n', n))
                        return n == 3 && memcmp(buf, "1\r\n", 3) == 0;
        }
        return false;
}

static int handshake(gnutls_session_t s) {
        int r;

        do
                r = gnutls_handshake(s);
        while (r < 0 && !gnutls_error_is_fatal(r));
        return r;
}

/* The SHA-256 key ID of the peer's raw public key, as lowercase hex. */
static int peer_key_id(gnutls_session_t s, char ret[KEY_ID_LEN + 1]) {
        static const char digits[] = "0123456789abcdef";
        const gnutls_datum_t *peers;
        unsigned n = 0;
        gnutls_pubkey_t key;
        unsigned char id[32];
        size_t id_size = sizeof(id);
        int r;

        if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_RAWPK)
                return GNUTLS_E_CERTIFICATE_ERROR;
        peers = gnutls_certificate_get_peers(s, &n);
        if (!peers || n == 0)
                return GNUTLS_E_NO_CERTIFICATE_FOUND;
        r = gnutls_pubkey_init(&key);
        if (r < 0)
                return r;
        r = gnutls_pubkey_import(key, &peers[0], GNUTLS_X509_FMT_DER);
        if (r >= 0)
                r = gnutls_pubkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, id, &id_size);
        gnutls_pubkey_deinit(key);
        if (r < 0)
                return r;
        if (id_size != sizeof(id))
                return GNUTLS_E_INTERNAL_ERROR;
        for (size_t i = 0; i < sizeof(id); i++) {
                ret[2 * i] = digits[id[i] >> 4];
                ret[2 * i + 1] = digits[id[i] & 15];
        }
        ret[KEY_ID_LEN] = '\0';
        return 0;
}

static int send_all(gnutls_session_t s, const unsigned char *data, size_t len) {
        while (len > 0) {
                ssize_t k = gnutls_record_send(s, data, len);
                if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
                        continue;
                if (k < 0)
                        return (int) k;
                data += k;
                len -= (size_t) k;
        }
        return 0;
}

/* After the handshake: the secret if the key is known, then close. */
static void serve_session(gnutls_session_t s) {
        char id[KEY_ID_LEN + 1];
        const struct key *k;

        if (handshake(s) < 0 || peer_key_id(s, id) < 0)
                return;
        k = find_key(id);
        if (!k)
                return;         /* unknown client: just close */
        if (send_all(s, k->secret, k->secret_len) < 0)
                return;
        gnutls_bye(s, GNUTLS_SHUT_WR);
}

/* A child's whole life: one connection, then _exit (no atexit work). */
static void serve(int fd) {
        gnutls_session_t s;
        int one = 1;

        if (!read_version(fd))
                _exit(1);
        /* Finished, secret and close_notify go out back to back: don't let
         * Nagle hold them for an ACK (the mandos server does the same). */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_TICKETS | GNUTLS_ENABLE_RAWPK) < 0)
                _exit(1);
        if (gnutls_priority_set(s, priority) >= 0 &&
            gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, credentials) >= 0) {
                gnutls_handshake_set_private_extensions(s, 1);
                gnutls_transport_set_int(s, fd);
                serve_session(s);
        }
        gnutls_deinit(s);
        close(fd);
        _exit(0);
}

static void accept_loop(int listen_fd) {
        for (;;) {
                int fd = accept4(listen_fd, NULL, NULL, 0);
                if (fd < 0)
                        continue;       /* EINTR, ECONNABORTED, EMFILE...: try again */
                pid_t pid = fork();
                if (pid == 0) {
                        close(listen_fd);
                        serve(fd);
                }
                close(fd);              /* the child's now (or lost if fork failed) */
        }
}

static unsigned parse_port(const char *s) {
        char *end;
        unsigned long p;

        errno = 0;
        p = strtoul(s, &end, 10);
        if (errno || end == s || *end || p > 65535) {
                fprintf(stderr, "limit-server: invalid port '%s'\n", s);
                usage(stderr);
                exit(2);
        }
        return (unsigned) p;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "keys", required_argument, NULL, 'k' },
                { "port", required_argument, NULL, 'p' },
                { "address", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *keys_path = NULL, *address = "::1", *port_arg = NULL;
        int c, fd;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'k': keys_path = optarg; break;
                case 'p': port_arg = optarg; break;
                case 'a': address = optarg; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        if (!keys_path || !port_arg || optind < argc) {
                usage(stderr);
                return 2;
        }

        unsigned port = parse_port(port_arg);
        load_keys(keys_path);
        tls_setup();
        fd = open_listener(address, port);

        /* Children reap themselves; a peer closing early must not kill a
         * child mid-write with SIGPIPE; SIGTERM/SIGINT keep their default. */
        signal(SIGCHLD, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);

        printf("listening on %u\n", bound_port(fd));
        fflush(stdout);
        accept_loop(fd);
}
