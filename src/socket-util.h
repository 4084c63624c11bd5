/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The address a socket is bound to, read back with getsockname(): the
 * listening socket may have been passed by systemd or given with
 * --socket, so its address and port are whatever it says, not what
 * mandos.conf asks for. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

typedef union SockaddrUnion {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
        struct sockaddr_storage storage;
} SockaddrUnion;

typedef struct SocketAddress {
        SockaddrUnion sockaddr;        /* as getsockname() gave it */
        char host[INET6_ADDRSTRLEN];   /* the address as text */
        uint16_t port;                 /* in host byte order */
} SocketAddress;

/* The IPv4 or IPv6 address fd is bound to. Returns 0, -errno if
 * getsockname() fails, or -EAFNOSUPPORT for any other family. */
int socket_bound_address(int fd, SocketAddress *ret);
