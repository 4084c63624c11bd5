/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "socket-util.h"

#include <errno.h>
#include <string.h>

int socket_bound_address(int fd, SocketAddress *ret) {
        SocketAddress a = {};
        socklen_t len = sizeof(a.sockaddr);
        const void *addr;

        if (getsockname(fd, &a.sockaddr.sa, &len) < 0)
                return -errno;
        if (a.sockaddr.sa.sa_family == AF_INET6) {
                addr = &a.sockaddr.in6.sin6_addr;
                a.port = ntohs(a.sockaddr.in6.sin6_port);
        } else if (a.sockaddr.sa.sa_family == AF_INET) {
                addr = &a.sockaddr.in.sin_addr;
                a.port = ntohs(a.sockaddr.in.sin_port);
        } else
                return -EAFNOSUPPORT;
        if (!inet_ntop(a.sockaddr.sa.sa_family, addr, a.host, sizeof(a.host)))
                return -errno;
        *ret = a;
        return 0;
}
