/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "socket-util.h"
#include "util.h"

/* Errors binding to the interface are not fatal, as in the reference. */
static int bind_to_interface(int fd, const char *interface) {
        if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, interface, (socklen_t) strlen(interface) + 1) >= 0)
                return 0;
        switch (errno) {
        case EPERM:
                log_error("No permission to bind to interface %s", interface);
                return 0;
        case ENOPROTOOPT:
                log_error("SO_BINDTODEVICE not available; cannot bind to interface %s", interface);
                return 0;
        case ENODEV:
                log_error("Interface %s does not exist, cannot bind", interface);
                return 0;
        default:
                return log_error_errno(errno, "Failed to bind to interface %s: %m", interface);
        }
}

/* "addr", "addr%ifname"; a plain IPv4 address on an IPv6 socket is mapped. */
static int parse_address(const char *address, const char *interface, bool ipv6,
                         struct sockaddr_storage *sa, socklen_t *len) {
        _cleanup_free_ char *host = strdup(strempty(address));
        char *percent;
        unsigned scope = 0;

        if (!host)
                return -ENOMEM;
        percent = strchr(host, '%');
        if (percent) {
                *percent = 0;
                scope = if_nametoindex(percent + 1);
                if (scope == 0)
                        return log_error_errno(ENODEV, "Unknown interface in address '%s'", address);
        } else if (interface)
                scope = if_nametoindex(interface);

        if (!ipv6) {
                struct sockaddr_in *in = (struct sockaddr_in *) sa;
                *in = (struct sockaddr_in) { .sin_family = AF_INET };
                if (*host && inet_pton(AF_INET, host, &in->sin_addr) != 1)
                        return log_error_errno(EINVAL, "Invalid IPv4 address '%s'", address);
                *len = sizeof(*in);
                return 0;
        }

        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) sa;
        struct in_addr v4;
        *in6 = (struct sockaddr_in6) { .sin6_family = AF_INET6, .sin6_addr = in6addr_any };
        if (!*host)
                ;
        else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
                ;
        else if (inet_pton(AF_INET, host, &v4) == 1) {
                in6->sin6_addr.s6_addr[10] = in6->sin6_addr.s6_addr[11] = 0xff;
                memcpy(&in6->sin6_addr.s6_addr[12], &v4, 4);
        } else
                return log_error_errno(EINVAL, "Invalid address '%s'", address);
        /* Link-local addresses need their interface (mandos(8), --address). */
        if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr))
                in6->sin6_scope_id = scope;
        *len = sizeof(*in6);
        return 0;
}

static int open_own_socket(const Settings *s) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage sa;
        socklen_t len = 0;
        int r, one = 1, zero = 0;

        fd = socket(s->use_ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create socket: %m");
        /* Dual stack regardless of net.ipv6.bindv6only: IPv4 peers appear as ::ffff:a.b.c.d. */
        if (s->use_ipv6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0)
                return log_error_errno(errno, "Failed to clear IPV6_V6ONLY: %m");
        if (s->interface && (r = bind_to_interface(fd, s->interface)) < 0)
                return r;

        /* Like the reference: without address and port, listen() picks an
         * ephemeral port on the wildcard address. */
        if (s->address || s->port) {
                if (s->port && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                        return log_error_errno(errno, "Failed to set SO_REUSEADDR: %m");
                r = parse_address(s->address, s->interface, s->use_ipv6, &sa, &len);
                if (r < 0)
                        return r;
                if (s->use_ipv6)
                        ((struct sockaddr_in6 *) &sa)->sin6_port = htons((uint16_t) s->port);
                else
                        ((struct sockaddr_in *) &sa)->sin_port = htons((uint16_t) s->port);
                if (bind(fd, (struct sockaddr *) &sa, len) < 0)
                        return log_error_errno(errno, "Failed to bind to address '%s', port %d: %m",
                                               strempty(s->address), s->port);
        }
        return TAKE_FD(fd);
}

static int take_given_socket(const Settings *s) {
        _cleanup_close_ int fd = -1;
        int type = 0, r;
        socklen_t len = sizeof(type);

        /* Always a private duplicate above stdio, which is later replaced by /dev/null. */
        fd = fcntl(s->socket_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return log_error_errno(errno, "Bad --socket %d: %m", s->socket_fd);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
                return log_error_errno(ENOTSOCK, "--socket %d is not a stream socket", s->socket_fd);
        if (s->address || s->port)
                log_warning("--socket given: ignoring the address and port settings");
        if (s->interface && (r = bind_to_interface(fd, s->interface)) < 0)
                return r;
        return TAKE_FD(fd);
}

/* Does a socket bound to sa accept connections to address (text)? A
 * wildcard socket does (an IPv6 one, dual stack, IPv4 ones too); else the
 * address must be the socket's own (an IPv4 one as ::ffff:a.b.c.d on an
 * IPv6 socket). An address that does not parse is not judged. */
static bool address_reaches(const struct sockaddr *sa, const char *address) {
        struct in6_addr want6;
        struct in_addr want4;
        bool v4 = inet_pton(AF_INET, address, &want4) == 1;

        if (!v4 && inet_pton(AF_INET6, address, &want6) != 1)
                return true;
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                return v4 && (in->sin_addr.s_addr == htonl(INADDR_ANY) || in->sin_addr.s_addr == want4.s_addr);
        }
        const struct in6_addr *have = &((const struct sockaddr_in6 *) sa)->sin6_addr;
        if (IN6_IS_ADDR_UNSPECIFIED(have))
                return true;
        if (v4)
                return IN6_IS_ADDR_V4MAPPED(have) && memcmp(&have->s6_addr[12], &want4, 4) == 0;
        return IN6_ARE_ADDR_EQUAL(have, &want6);
}

/* The socket systemd passed is the one used, whatever mandos.conf says; a
 * port, address or interface there that it does not match is a host that
 * connects to where nobody listens: say so, with both values. */
/* mandos-generator writes mandos.socket's drop-in from mandos.conf at boot
 * and at daemon-reload (mandos(8), LISTENING SOCKET); with it in place the
 * two agree. A mismatch means mandos.conf (or $DAEMON_ARGS) changed since. */
#define GENERATOR_HINT "Run \"systemctl daemon-reload\" and \"systemctl restart mandos.socket mandos.service\" " \
        "(mandos-generator applies mandos.conf to the socket), or change mandos.socket's ListenStream=."

static void check_activated(int fd, const Settings *s) {
        char dev[IF_NAMESIZE + 1] = "";
        socklen_t dev_len = sizeof(dev) - 1;
        SocketAddress a;

        if (socket_bound_address(fd, &a) < 0)
                return;
        if (s->port > 0 && (unsigned) s->port != a.port)
                log_error("The socket systemd passed listens on port %u, but the configuration asks for port %d: "
                          "clients connecting to port %d find nobody. " GENERATOR_HINT, a.port, s->port, s->port);
        if (!isempty(s->address) && !address_reaches(&a.sockaddr.sa, s->address))
                log_error("The socket systemd passed listens on address %s, but the configuration asks for %s. "
                          GENERATOR_HINT, a.host, s->address);
        if (!isempty(s->interface) &&
            (getsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, &dev_len) < 0 || !streq(dev, s->interface)))
                log_error("The socket systemd passed is bound to interface '%s', but the configuration asks "
                          "for '%s'. " GENERATOR_HINT, dev, s->interface);
}

int listener_open(const Settings *s) {
        _cleanup_close_ int fd = -1;
        int n, flags;

        n = sd_listen_fds(true);
        if (n < 0)
                return log_error_errno(n, "Failed to read the sockets passed by systemd: %m");
        if (n > 1)
                log_warning("%d sockets passed; using the first one", n);
        if (n > 0) {
                fd = SD_LISTEN_FDS_START;
                if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, -1) <= 0)
                        return log_error_errno(ENOTSOCK, "The socket passed by systemd is not a stream socket");
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                        return log_error_errno(errno, "Failed to set FD_CLOEXEC: %m");
                check_activated(fd, s);
        } else if (s->socket_fd >= 0)
                fd = take_given_socket(s);
        else
                fd = open_own_socket(s);
        if (fd < 0)
                return fd;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return log_error_errno(errno, "Failed to make the socket non-blocking: %m");
        /* A deeper backlog than the reference's 5: a rack rebooting at once
         * sends every request in the same second. */
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Failed to listen: %m");
        return TAKE_FD(fd);
}

int listener_log_address(int fd) {
        SocketAddress a;

        if (socket_bound_address(fd, &a) < 0)
                return 0;
        if (a.sockaddr.sa.sa_family == AF_INET6)
                log_info("Now listening on address '%s', port %u, flowinfo %u, scope_id %u", a.host, a.port,
                         ntohl(a.sockaddr.in6.sin6_flowinfo), a.sockaddr.in6.sin6_scope_id);
        else
                log_info("Now listening on address '%s', port %u", a.host, a.port);
        return a.port;
}
