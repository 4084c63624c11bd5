/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * mandos-generator: a systemd system generator (systemd.generator(7)) that
 * makes the address, port and interface of mandos.conf apply to
 * mandos.socket, which otherwise listens where its unit says (port 9876,
 * every address). It runs at boot and at every "systemctl daemon-reload",
 * reads mandos.conf with the server's own reader (settings.c), and writes
 *
 *   NORMAL_DIR/mandos.socket.d/50-mandos-conf.conf
 *
 * with "ListenStream=" (cleared) and the address and port, and
 * "BindToDevice=" for the interface (mandos(8), LISTENING SOCKET). When
 * mandos.conf sets none of them it writes nothing: the unit's port stays.
 *
 * A generator must never fail a boot: whatever goes wrong (a bad
 * mandos.conf, an address systemd could not listen on) is logged, naming
 * the file and key, nothing is written, and the exit status is 0. The
 * server then starts on the unit's socket and logs at ERROR that it does not
 * match mandos.conf (listener.c).
 *
 * Environment: MANDOS_GENERATOR_CONFIGDIR, the directory of mandos.conf
 * instead of /etc/mandos (for tests). Messages go to /dev/kmsg when a
 * service manager runs us ($SYSTEMD_SCOPE set) and it can be opened, else
 * to standard error.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "settings.h"
#include "util.h"

/* units/mandos.socket's ListenStream=: the port when mandos.conf gives an
 * address but no port (the reference would take a random one, which a
 * socket unit cannot). */
#define UNIT_DEFAULT_PORT 9876
#define DROPIN_DIR "mandos.socket.d"
#define DROPIN_NAME "50-mandos-conf.conf"

static int log_fd = STDERR_FILENO;

/* One message per line; kmsg wants one record per write(). */
static void log_line(int priority, const char *line) {
        if (log_fd == STDERR_FILENO)
                dprintf(log_fd, "%s\n", line);
        else
                dprintf(log_fd, "<%d>%s\n", priority, line);
}

_printf_(2, 3)
static void log_msg(int priority, const char *format, ...) {
        _cleanup_free_ char *text = NULL, *line = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&text, format, ap) < 0)
                text = NULL;
        va_end(ap);
        if (text && asprintf(&line, "%s: %s", program_invocation_short_name, text) >= 0)
                log_line(priority, line);
}

static void log_open(void) {
        int fd;

        if (!getenv("SYSTEMD_SCOPE"))
                return;
        fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0)
                log_fd = fd;
}

/* Pass on what settings_load() printed, line by line, leaving out its
 * usage text (written for a command line, not for us). */
static void log_captured(char *text) {
        char *save = NULL;

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                if (!startswith(line, "usage:") && line[0] != ' ')
                        log_line(LOG_ERR, line);
}

/* mandos.conf, read as the server reads it. --check: the file alone is
 * judged (not whether a port or socket will be there without Zeroconf). */
static int read_settings(const char *configdir, Settings *s) {
        char *argv[] = { program_invocation_short_name, (char *) "--check",
                         (char *) "--configdir", (char *) configdir, NULL };
        _cleanup_free_ char *captured = NULL;
        size_t size = 0;
        FILE *saved = stderr, *capture;
        SettingsResult r;

        capture = open_memstream(&captured, &size);
        if (!capture)
                return -errno;
        stderr = capture;
        r = settings_load(s, (int) ELEMENTSOF(argv) - 1, argv);
        stderr = saved;
        fclose(capture);
        if (captured)
                log_captured(captured);
        return r == SETTINGS_RUN ? 0 : -EINVAL;
}

/* An interface name as the kernel takes it (and systemd's BindToDevice=). */
static bool ifname_ok(const char *name) {
        size_t n = strlen(name);

        if (n == 0 || n >= IFNAMSIZ || streq(name, ".") || streq(name, ".."))
                return false;
        for (const char *p = name; *p; p++)
                /* '%' would be a specifier in a unit file. */
                if (*p == '/' || *p == ':' || *p == '%' || *p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

/* The ListenStream= value for address and port, as the server would bind
 * them (mandos.conf(5): address, port, use_ipv6), and the interface to
 * bind to. An IPv6 address may carry "%IF"; a link-local one without it
 * takes the interface, as in the server (listener.c). */
static int listen_stream(const Settings *s, const char *path, char **ret, char **ret_interface) {
        _cleanup_free_ char *host = NULL;
        const char *scope = NULL;
        struct in6_addr a6;
        struct in_addr a4;
        unsigned port = s->port > 0 ? (unsigned) s->port : UNIT_DEFAULT_PORT;
        char *percent;
        int r;

        if (s->interface && !(*ret_interface = strdup(s->interface)))
                return -ENOMEM;

        if (!s->address) {
                /* Every address: dual stack (the unit's BindIPv6Only=both), or IPv4 only. */
                r = s->use_ipv6 ? asprintf(ret, "%u", port) : asprintf(ret, "0.0.0.0:%u", port);
                return r < 0 ? -ENOMEM : 0;
        }
        host = strdup(s->address);
        if (!host)
                return -ENOMEM;
        percent = strchr(host, '%');
        if (percent) {
                *percent = 0;
                scope = percent + 1;
        }
        if (inet_pton(AF_INET6, host, &a6) == 1) {
                if (!s->use_ipv6) {
                        log_msg(LOG_ERR, "%s: [DEFAULT] address: '%s' is an IPv6 address, but use_ipv6 is false",
                                path, s->address);
                        return -EINVAL;
                }
                if (scope && !ifname_ok(scope)) {
                        log_msg(LOG_ERR, "%s: [DEFAULT] address: bad interface name in '%s'", path, s->address);
                        return -EINVAL;
                }
                if (IN6_IS_ADDR_LINKLOCAL(&a6)) {
                        /* systemd 252's ListenStream= takes no scope: the
                         * nearest it can do is the port on every address of
                         * that interface. */
                        if (!scope && !s->interface) {
                                log_msg(LOG_ERR, "%s: [DEFAULT] address: link-local '%s' needs an interface "
                                        "(%%IF or interface =)", path, s->address);
                                return -EINVAL;
                        }
                        if (scope) {
                                free(*ret_interface);
                                if (!(*ret_interface = strdup(scope)))
                                        return -ENOMEM;
                        }
                        log_msg(LOG_WARNING, "%s: [DEFAULT] address: systemd cannot listen on link-local '%s' "
                                "alone: mandos.socket listens on port %u of interface %s instead",
                                path, s->address, port, *ret_interface);
                        return asprintf(ret, "%u", port) < 0 ? -ENOMEM : 0;
                }
                /* The server ignores a scope on other addresses; so do we. */
                return asprintf(ret, "[%s]:%u", host, port) < 0 ? -ENOMEM : 0;
        }
        if (!scope && inet_pton(AF_INET, host, &a4) == 1)
                /* The reference binds ::ffff:A.B.C.D on its IPv6 socket: the
                 * same connections reach an IPv4 socket on A.B.C.D. */
                return asprintf(ret, "%s:%u", host, port) < 0 ? -ENOMEM : 0;
        log_msg(LOG_ERR, "%s: [DEFAULT] address: not an IPv4 or IPv6 address: '%s'", path, s->address);
        return -EINVAL;
}

static int write_dropin(const char *dir, const char *path, const char *listen, const char *interface) {
        _cleanup_free_ char *d = NULL, *f = NULL, *tmp = NULL;
        FILE *out;
        int fd, r = 0;

        if (asprintf(&d, "%s/" DROPIN_DIR, dir) < 0 ||
            asprintf(&f, "%s/" DROPIN_NAME, d) < 0 ||
            asprintf(&tmp, "%s/." DROPIN_NAME "XXXXXX", d) < 0)
                return -ENOMEM;
        if (mkdir(d, 0755) < 0 && errno != EEXIST)
                return -errno;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        (void) fchmod(fd, 0644);
        out = fdopen(fd, "w");
        if (!out) {
                r = -errno;
                close(fd);
                unlink(tmp);
                return r;
        }
        fprintf(out,
                "# Written by %s from %s at boot and at daemon-reload\n"
                "# (mandos(8), LISTENING SOCKET). Edit mandos.conf, not this file.\n"
                "[Socket]\n", program_invocation_short_name, path);
        if (listen)
                fprintf(out, "ListenStream=\nListenStream=%s\n", listen);
        if (interface)
                fprintf(out, "BindToDevice=%s\n", interface);
        if (fflush(out) != 0 || ferror(out))
                r = -(errno ?: EIO);
        if (fclose(out) != 0 && r == 0)
                r = -(errno ?: EIO);
        if (r == 0 && rename(tmp, f) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

static int run(const char *dir) {
        _cleanup_(settings_done) Settings s = {};
        _cleanup_free_ char *path = NULL, *listen = NULL, *interface = NULL;
        const char *configdir = getenv("MANDOS_GENERATOR_CONFIGDIR");
        int r;

        if (isempty(configdir))
                configdir = DEFAULT_CONFIGDIR;
        if (asprintf(&path, "%s/mandos.conf", configdir) < 0)
                return -ENOMEM;
        r = read_settings(configdir, &s);
        if (r < 0) {
                log_msg(LOG_ERR, "%s is not valid: mandos.socket keeps its own ListenStream=", path);
                return r;
        }
        if (s.port <= 0 && !s.address && !s.interface)
                return 0;
        if (s.interface && !ifname_ok(s.interface)) {
                log_msg(LOG_ERR, "%s: [DEFAULT] interface: not an interface name: '%s'", path, s.interface);
                return -EINVAL;
        }
        if (s.port > 0 || s.address)
                r = listen_stream(&s, path, &listen, &interface);
        else
                r = (interface = strdup(s.interface)) ? 0 : -ENOMEM;
        if (r < 0)
                return r;
        r = write_dropin(dir, path, listen, interface);
        if (r < 0) {
                errno = -r;
                log_msg(LOG_ERR, "Cannot write %s/" DROPIN_DIR "/" DROPIN_NAME ": %m", dir);
        }
        return r;
}

int main(int argc, char *argv[]) {
        log_open();
        /* systemd passes three directories: normal, early, late. */
        if (argc != 2 && argc != 4) {
                log_msg(LOG_ERR, "usage: %s NORMAL_DIR [EARLY_DIR LATE_DIR]", program_invocation_short_name);
                return 0;
        }
        (void) run(argv[1]);
        /* Never fail the boot (systemd.generator(7)): what went wrong is logged. */
        return 0;
}
