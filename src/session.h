/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* One connection from a Mandos client, as a state machine on the event
 * loop (SPEC §3): the protocol line, the TLS handshake (we are the TLS
 * client), the peer's key ID, the client lookup, the secret, the TLS bye.
 * Every step has a deadline; a peer that misses it is dropped. Nothing
 * blocks, so one slow peer never delays another. */

#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "client.h"
#include "tls.h"

/* Per-step deadlines (µs): a peer has this long to send its protocol
 * line, then again to complete the handshake, then to take the secret and
 * answer the TLS close. */
#define SESSION_LINE_TIMEOUT      (10 * USEC_PER_SEC)
#define SESSION_HANDSHAKE_TIMEOUT (10 * USEC_PER_SEC)
#define SESSION_SEND_TIMEOUT      (10 * USEC_PER_SEC)

/* The protocol line is "1\r\n"; anything longer than this is not one. */
#define SESSION_LINE_MAX 256

typedef struct Server Server;

typedef enum SessionState {
        SESSION_READ_LINE,
        SESSION_HANDSHAKE,
        SESSION_APPROVAL,
        SESSION_SEND,
        SESSION_BYE,
        _SESSION_STATE_MAX,
} SessionState;

typedef struct Session Session;
struct Session {
        Server *server;
        Session *prev, *next;       /* the server's list of sessions */

        int fd;
        sd_event_source *io;
        sd_event_source *deadline;
        SessionState state;

        char address[INET6_ADDRSTRLEN + 1 + 16];  /* "::1", "fe80::1%eth0" */
        char peer[INET6_ADDRSTRLEN + 64];          /* the reference's tuple: "('::1', 44108, 0, 0)" */

        char line[SESSION_LINE_MAX];
        size_t line_size;

        gnutls_session_t tls;
        char key_id[KEY_ID_HEX_SIZE];
        Client *client;

        bool approval_waiting;      /* counted in the client's approvals_pending */
        uint64_t approval_remaining;/* µs of approval_delay still to wait */
        uint64_t approval_since;    /* CLOCK_MONOTONIC start of the current wait */

        uint8_t *secret;            /* a private copy while sending; wiped */
        size_t secret_size;
        size_t secret_sent;
};

/* Take over an accepted, non-blocking socket. Returns 0 or a negative errno
 * (fd is closed either way). */
int session_new(Server *server, int fd, const struct sockaddr_storage *peer, Session **ret);
Session *session_free(Session *s);

/* The client's approval, denial, enabling or disabling: look again. */
void session_approval_wake(Session *s);
/* A client's key ID changed or a client was removed: a connection waiting
 * for approval that no longer speaks for its client ends now, with nothing. */
void session_recheck_client(Session *s);

/* The protocol line (SPEC §3.2), as read: accepted if its first
 * whitespace-separated field is a Python int ≤ 1. Returns 0 or -EINVAL
 * (also for a NUL byte, or more than SESSION_LINE_MAX bytes). */
int protocol_line_parse(const char *line, size_t size);
