/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * tls-peer: a misbehaving Mandos client for the integration tests. Each
 * connection does what Debian's mandos-client does on the wire (connect,
 * send the protocol line, be the TLS *server* with a raw public key), and
 * then, instead of reading its secret and closing, what it is told:
 *
 *   tls-peer --port PORT [--address ADDR] [--connections N]
 *            [--key FILE.pem | --key-type ed25519|rsa] [--rsa-bits BITS]
 *            [--priority STRING] [--line TEXT]
 *            [--junk BYTES] [--after close|hold|read] [--hold SECONDS]
 *            [--reconnect --duration SECONDS [--pause MS]]
 *            [--ready-file FILE] [--timeout SECONDS]
 *
 *   --connections N  N connections at once, one thread each (default 1).
 *   --key FILE       the private key (PEM; any type GnuTLS reads), sent as
 *                    a raw public key: a configured client's key is found,
 *                    anything else is "not found". Without --key, one fresh
 *                    key of --key-type (default ed25519) for all connections.
 *   --line TEXT      the protocol line, C escapes allowed (default "1\r\n").
 *   --junk BYTES     after the handshake, send BYTES of application data
 *                    (suffixes K, M), in full records, before --after.
 *   --after close    close at once (no TLS close alert);
 *           hold     (the default) neither read nor answer nor close, until
 *                    the server has closed the socket or --hold seconds
 *                    (default 15) pass. Its FIN is seen without reading
 *                    (POLLRDHUP); after it, one junk byte every 100 ms
 *                    draws a reset once the server has closed;
 *           read     read application data until the server's close alert
 *                    or end of file, then close without answering.
 *   --reconnect      start over after each connection ends (after --pause
 *                    ms, default 100) until --duration seconds have passed.
 *   --ready-file F   written ("ready\n") once every connection has done its
 *                    first handshake and junk, or failed.
 *   --timeout S      on every socket operation (default 10).
 *
 * One line per connection on stdout, then a summary line:
 *   summary: connections=N handshakes=H failed=F junk_sent=B received=R
 *            fins=N max_fin_s=T closed_by_server=C max_close_s=T
 * "fins" counts the held connections the server sent its FIN on, and
 * "closed_by_server" those it closed (reset, or hung up); the max_*_s are
 * the longest each took, from the end of the junk. Exit status 0
 * if every connection completed at least one handshake, 1 if not, 2 on a
 * usage error. Only loopback addresses are accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PRIORITY "SECURE128:!CTYPE-X.509:+CTYPE-RAWPK:!VERS-ALL:+VERS-TLS1.3"
#define RECORD_SIZE 16384
#define MAX_CONNECTIONS 4096

typedef enum { AFTER_CLOSE, AFTER_HOLD, AFTER_READ } After;

static struct {
        struct sockaddr_storage addr;
        socklen_t addr_len;
        gnutls_certificate_credentials_t cred;
        gnutls_priority_t priority;
        char line[256];
        size_t line_size;
        uint64_t junk;
        After after;
        double hold, timeout, duration, pause;
        bool reconnect;
        const char *ready_file;
        double start;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        unsigned n, n_ready;
} P = {
        .line = "1\r\n",
        .line_size = 3,
        .after = AFTER_HOLD,
        .hold = 15,
        .timeout = 10,
        .pause = 0.1,
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .cond = PTHREAD_COND_INITIALIZER,
};

typedef struct {
        unsigned index;
        unsigned handshakes, failed, fins, closed_by_server;
        uint64_t junk_sent, received;
        double max_fin, max_close;
        char last_error[128];
} Conn;

static void die(const char *what, int gnutls_error) {
        if (gnutls_error)
                fprintf(stderr, "tls-peer: %s: %s\n", what, gnutls_strerror(gnutls_error));
        else
                fprintf(stderr, "tls-peer: %s\n", what);
        exit(1);
}

static void usage(const char *why) {
        fprintf(stderr,
                "tls-peer: %s\n"
                "usage: tls-peer --port PORT [--address ADDR] [--connections N]\n"
                "                [--key FILE.pem | --key-type ed25519|rsa] [--rsa-bits BITS]\n"
                "                [--priority STRING] [--line TEXT] [--junk BYTES]\n"
                "                [--after close|hold|read] [--hold SECONDS]\n"
                "                [--reconnect --duration SECONDS [--pause MS]]\n"
                "                [--ready-file FILE] [--timeout SECONDS]\n",
                why);
        exit(2);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
        struct timespec ts = { (time_t) s, (long) ((s - (double) (time_t) s) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static uint64_t parse_size(const char *s) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s)
                usage("bad size");
        if (*end == 'K' || *end == 'k')
                v <<= 10, end++;
        else if (*end == 'M' || *end == 'm')
                v <<= 20, end++;
        else if (*end == 'G' || *end == 'g')
                v <<= 30, end++;
        if (*end)
                usage("bad size suffix");
        return v;
}

static double parse_seconds(const char *s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || *end || v < 0 || v > 3600)
                usage("bad number of seconds");
        return v;
}

/* "1\r\n" and the like: \r, \n, \t, \\, \xHH. */
static void parse_line(const char *s) {
        size_t n = 0;

        for (; *s; s++) {
                char c = *s;
                if (n >= sizeof(P.line))
                        usage("--line too long");
                if (c == '\\' && s[1]) {
                        s++;
                        if (*s == 'r')
                                c = '\r';
                        else if (*s == 'n')
                                c = '\n';
                        else if (*s == 't')
                                c = '\t';
                        else if (*s == 'x' && s[1] && s[2]) {
                                char hex[3] = { s[1], s[2], 0 };
                                c = (char) strtol(hex, NULL, 16);
                                s += 2;
                        } else
                                c = *s;
                }
                P.line[n++] = c;
        }
        P.line_size = n;
}

static void set_address(const char *address, const char *port_text) {
        struct sockaddr_in *in = (struct sockaddr_in *) &P.addr;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &P.addr;
        long port = strtol(port_text, NULL, 10);

        if (port <= 0 || port > 65535)
                usage("bad --port");
        memset(&P.addr, 0, sizeof(P.addr));
        if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
                if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
                        usage("only loopback addresses (127.0.0.0/8, ::1)");
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                P.addr_len = sizeof(*in);
        } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
                if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        usage("only loopback addresses (127.0.0.0/8, ::1)");
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                P.addr_len = sizeof(*in6);
        } else
                usage("bad --address");
}

/* The credentials: the private key, and its public key as a raw public key. */
static void set_key(gnutls_privkey_t key) {
        gnutls_pubkey_t pub;
        gnutls_pcert_st *pcert = calloc(1, sizeof(*pcert));
        int r;

        if (!pcert)
                die("out of memory", 0);
        if ((r = gnutls_pubkey_init(&pub)) < 0 || (r = gnutls_pubkey_import_privkey(pub, key, 0, 0)) < 0 ||
            (r = gnutls_pcert_import_rawpk(pcert, pub, 0)) < 0 ||
            (r = gnutls_certificate_allocate_credentials(&P.cred)) < 0 ||
            /* The credentials own pcert's contents and the key from here on. */
            (r = gnutls_certificate_set_key(P.cred, NULL, 0, pcert, 1, key)) < 0)
                die("setting up the key", r);
        free(pcert);
}

static void load_key(const char *path) {
        gnutls_datum_t pem = {};
        gnutls_privkey_t key;
        int r;

        if ((r = gnutls_load_file(path, &pem)) < 0)
                die(path, r);
        if ((r = gnutls_privkey_init(&key)) < 0 ||
            (r = gnutls_privkey_import_x509_raw(key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0)
                die(path, r);
        gnutls_memset(pem.data, 0, pem.size);
        gnutls_free(pem.data);
        set_key(key);
}

static void generate_key(const char *type, unsigned rsa_bits) {
        gnutls_privkey_t key;
        gnutls_pk_algorithm_t pk;
        unsigned bits = 0;
        int r;

        if (strcmp(type, "ed25519") == 0)
                pk = GNUTLS_PK_EDDSA_ED25519;
        else if (strcmp(type, "rsa") == 0)
                pk = GNUTLS_PK_RSA, bits = rsa_bits;
        else
                usage("--key-type is ed25519 or rsa");
        if ((r = gnutls_privkey_init(&key)) < 0 || (r = gnutls_privkey_generate(key, pk, bits, 0)) < 0)
                die("generating a key", r);
        set_key(key);
}

static int connect_peer(void) {
        struct timeval tv = { (time_t) P.timeout,
                              (suseconds_t) ((P.timeout - (double) (time_t) P.timeout) * 1e6) };
        int one = 1;
        int fd = socket(P.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        /* Blocking I/O with a deadline on every call: nothing here hangs. */
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *) &P.addr, P.addr_len) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static void mark_ready(bool *marked) {
        if (*marked)
                return;
        *marked = true;
        pthread_mutex_lock(&P.lock);
        P.n_ready++;
        pthread_cond_broadcast(&P.cond);
        pthread_mutex_unlock(&P.lock);
}

static void fail(Conn *c, const char *what, int gnutls_error) {
        c->failed++;
        snprintf(c->last_error, sizeof(c->last_error), "%s: %s", what,
                 gnutls_error ? gnutls_strerror(gnutls_error) : strerror(errno));
}

/* Send the junk; stop at its end, or when the server stops taking it. */
static void send_junk(Conn *c, gnutls_session_t s) {
        static const unsigned char zeros[RECORD_SIZE];

        while (c->junk_sent < P.junk) {
                size_t n = P.junk - c->junk_sent < RECORD_SIZE ? (size_t) (P.junk - c->junk_sent) : RECORD_SIZE;
                ssize_t r = gnutls_record_send(s, zeros, n);
                if (r == GNUTLS_E_INTERRUPTED)
                        continue;
                if (r < 0)
                        return; /* closed, reset, or not read for --timeout: the server's choice */
                c->junk_sent += (uint64_t) r;
        }
}

static void note_close(double since, unsigned *count, double *max) {
        double took = now_s() - since;
        (*count)++;
        if (took > *max)
                *max = took;
}

/* Neither read nor answer nor close: stay in the server's table for as long
 * as it lets us. Its FIN (its close alert's end of file) shows as
 * POLLRDHUP, without reading; after it a close() of the server's sends
 * nothing, so one byte every PROBE_INTERVAL (never a TLS close alert: junk
 * the server must throw away) draws a reset once the socket is gone. */
#define PROBE_INTERVAL 0.1
static void hold(Conn *c, int fd, double since) {
        double until = since + P.hold;
        bool fin = false;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = fin ? 0 : POLLRDHUP };
                double left = until - now_s(), wait = fin && left > PROBE_INTERVAL ? PROBE_INTERVAL : left;
                int r;

                if (left <= 0)
                        return;
                r = poll(&p, 1, (int) (wait * 1000) + 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return;
                if (p.revents & (POLLHUP | POLLERR)) {
                        note_close(since, &c->closed_by_server, &c->max_close);
                        return;
                }
                if (!fin && (p.revents & POLLRDHUP)) {
                        fin = true;
                        note_close(since, &c->fins, &c->max_fin);
                }
                if (fin && send(fd, "", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN) {
                        note_close(since, &c->closed_by_server, &c->max_close);
                        return;
                }
        }
}

static void read_all(Conn *c, gnutls_session_t s) {
        char buf[RECORD_SIZE];

        for (;;) {
                ssize_t r = gnutls_record_recv(s, buf, sizeof(buf));
                if (r == GNUTLS_E_INTERRUPTED)
                        continue;
                if (r <= 0)
                        return;
                c->received += (uint64_t) r;
        }
}

/* One connection, start to end. */
static void run_once(Conn *c, bool *marked) {
        gnutls_session_t s = NULL;
        double since;
        int fd, r;

        fd = connect_peer();
        if (fd < 0) {
                fail(c, "connect", 0);
                return;
        }
        if (write(fd, P.line, P.line_size) != (ssize_t) P.line_size) {
                fail(c, "sending the protocol line", 0);
                goto out;
        }
        if ((r = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_ENABLE_RAWPK | GNUTLS_NO_TICKETS)) < 0) {
                s = NULL;
                fail(c, "gnutls_init", r);
                goto out;
        }
        if ((r = gnutls_priority_set(s, P.priority)) < 0 ||
            (r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, P.cred)) < 0) {
                fail(c, "setting up TLS", r);
                goto out;
        }
        gnutls_transport_set_int(s, fd);
        do
                r = gnutls_handshake(s);
        while (r == GNUTLS_E_INTERRUPTED || (r < 0 && !gnutls_error_is_fatal(r) && r != GNUTLS_E_AGAIN));
        if (r < 0) {
                fail(c, "handshake", r);
                goto out;
        }
        c->handshakes++;
        send_junk(c, s);
        mark_ready(marked);
        since = now_s();
        switch (P.after) {
        case AFTER_CLOSE:
                break;
        case AFTER_HOLD:
                hold(c, fd, since);
                break;
        case AFTER_READ:
                read_all(c, s);
                break;
        }
out:
        if (s)
                gnutls_deinit(s);
        close(fd);
}

static void *conn_main(void *arg) {
        Conn *c = arg;
        bool marked = false;

        do {
                run_once(c, &marked);
                mark_ready(&marked); /* a failure is ready too: nothing more to wait for */
                if (P.reconnect && now_s() - P.start < P.duration)
                        sleep_s(P.pause);
        } while (P.reconnect && now_s() - P.start < P.duration);
        return NULL;
}

static void write_ready_file(void) {
        FILE *f = fopen(P.ready_file, "we");
        if (!f || fputs("ready\n", f) < 0 || fclose(f) != 0)
                die("cannot write the ready file", 0);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "address", required_argument, NULL, 'a' },
                { "port", required_argument, NULL, 'p' },
                { "connections", required_argument, NULL, 'n' },
                { "key", required_argument, NULL, 'k' },
                { "key-type", required_argument, NULL, 'K' },
                { "rsa-bits", required_argument, NULL, 'B' },
                { "priority", required_argument, NULL, 'P' },
                { "line", required_argument, NULL, 'l' },
                { "junk", required_argument, NULL, 'j' },
                { "after", required_argument, NULL, 'A' },
                { "hold", required_argument, NULL, 'h' },
                { "reconnect", no_argument, NULL, 'r' },
                { "duration", required_argument, NULL, 'd' },
                { "pause", required_argument, NULL, 'w' },
                { "ready-file", required_argument, NULL, 'R' },
                { "timeout", required_argument, NULL, 't' },
                {},
        };
        const char *address = "127.0.0.1", *port = NULL, *key = NULL, *key_type = "ed25519";
        const char *priority = DEFAULT_PRIORITY, *error_pos = NULL;
        unsigned long n = 1, rsa_bits = 3072;
        pthread_attr_t attr;
        pthread_t *threads;
        Conn *conns, total = {};
        int c, r;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'a': address = optarg; break;
                case 'p': port = optarg; break;
                case 'n': n = strtoul(optarg, NULL, 10); break;
                case 'k': key = optarg; break;
                case 'K': key_type = optarg; break;
                case 'B': rsa_bits = strtoul(optarg, NULL, 10); break;
                case 'P': priority = optarg; break;
                case 'l': parse_line(optarg); break;
                case 'j': P.junk = parse_size(optarg); break;
                case 'A':
                        if (strcmp(optarg, "close") == 0)
                                P.after = AFTER_CLOSE;
                        else if (strcmp(optarg, "hold") == 0)
                                P.after = AFTER_HOLD;
                        else if (strcmp(optarg, "read") == 0)
                                P.after = AFTER_READ;
                        else
                                usage("--after is close, hold or read");
                        break;
                case 'h': P.hold = parse_seconds(optarg); break;
                case 'r': P.reconnect = true; break;
                case 'd': P.duration = parse_seconds(optarg); break;
                case 'w': P.pause = parse_seconds(optarg) / 1000; break;
                case 'R': P.ready_file = optarg; break;
                case 't': P.timeout = parse_seconds(optarg); break;
                default: usage("unknown option");
                }
        }
        if (optind != argc || !port)
                usage("--port is required");
        if (n < 1 || n > MAX_CONNECTIONS)
                usage("--connections is 1 to 4096");
        if (rsa_bits < 1024 || rsa_bits > 16384)
                usage("--rsa-bits is 1024 to 16384");
        if (P.reconnect && P.duration <= 0)
                usage("--reconnect needs --duration");
        set_address(address, port);
        /* A server that closes on us makes send() fail, not kill us. */
        signal(SIGPIPE, SIG_IGN);

        if ((r = gnutls_priority_init(&P.priority, priority, &error_pos)) < 0)
                die("bad --priority", r);
        if (key)
                load_key(key);
        else
                generate_key(key_type, (unsigned) rsa_bits);

        threads = calloc(n, sizeof(*threads));
        conns = calloc(n, sizeof(*conns));
        if (!threads || !conns)
                die("out of memory", 0);
        P.n = (unsigned) n;
        P.start = now_s();
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (unsigned i = 0; i < n; i++) {
                conns[i].index = i;
                if (pthread_create(&threads[i], &attr, conn_main, &conns[i]) != 0)
                        die("cannot start a thread", 0);
        }
        pthread_attr_destroy(&attr);

        if (P.ready_file) {
                pthread_mutex_lock(&P.lock);
                while (P.n_ready < P.n)
                        pthread_cond_wait(&P.cond, &P.lock);
                pthread_mutex_unlock(&P.lock);
                write_ready_file();
        }

        for (unsigned i = 0; i < n; i++) {
                Conn *x = &conns[i];
                pthread_join(threads[i], NULL);
                printf("conn %u: handshakes=%u failed=%u junk_sent=%llu received=%llu fins=%u max_fin_s=%.3f "
                       "closed_by_server=%u max_close_s=%.3f%s%s\n",
                       x->index, x->handshakes, x->failed, (unsigned long long) x->junk_sent,
                       (unsigned long long) x->received, x->fins, x->max_fin, x->closed_by_server, x->max_close,
                       x->last_error[0] ? " last_error=" : "", x->last_error);
                total.handshakes += x->handshakes;
                total.failed += x->failed;
                total.junk_sent += x->junk_sent;
                total.received += x->received;
                total.fins += x->fins;
                total.closed_by_server += x->closed_by_server;
                if (x->max_fin > total.max_fin)
                        total.max_fin = x->max_fin;
                if (x->max_close > total.max_close)
                        total.max_close = x->max_close;
                if (x->handshakes == 0)
                        total.index++; /* connections that never got through */
        }
        printf("summary: connections=%lu handshakes=%u failed=%u junk_sent=%llu received=%llu fins=%u "
               "max_fin_s=%.3f closed_by_server=%u max_close_s=%.3f\n",
               n, total.handshakes, total.failed, (unsigned long long) total.junk_sent,
               (unsigned long long) total.received, total.fins, total.max_fin, total.closed_by_server,
               total.max_close);
        gnutls_priority_deinit(P.priority);
        gnutls_certificate_free_credentials(P.cred);
        free(threads);
        free(conns);
        return total.index == 0 ? 0 : 1;
}
