/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* One connection from a Mandos client, as a state machine on the event
 * loop (docs/PROTOCOL.md): the protocol line, the TLS handshake (we are
 * the TLS client), the peer's key ID, the client lookup, the secret, the
 * TLS bye.
 * Every step has a deadline; a peer that misses it is dropped. Nothing
 * blocks, so one slow peer never delays another, and nothing a peer sends
 * is kept without bound: the bye reads and discards a few KiB at most. */

#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "list.h"
#include "client.h"
#include "tls.h"

/* Per-step deadlines (µs): a peer has this long to send its protocol
 * line, then again to complete the handshake, then to take the secret and
 * answer the TLS close. A refused peer (unknown key, bad certificate,
 * disabled, denied) gets only SESSION_BYE_REFUSED_TIMEOUT for the close:
 * there is nothing left to deliver to it. */
#define SESSION_LINE_TIMEOUT        (10 * USEC_PER_SEC)
#define SESSION_HANDSHAKE_TIMEOUT   (10 * USEC_PER_SEC)
#define SESSION_SEND_TIMEOUT        (10 * USEC_PER_SEC)
#define SESSION_BYE_REFUSED_TIMEOUT (1 * USEC_PER_SEC)

/* In the bye we send our close alert and a FIN, then read and throw away
 * what the peer still sends until its end of file, at most this much: the
 * real mandos-client sends only its own close alert (a few dozen bytes).
 * After the secret we read on rather than close at once, because closing a
 * socket with unread data sends a reset, which can destroy the secret still
 * on its way; a peer that sends more than the bound is cut off. */
#define SESSION_BYE_DRAIN_REFUSED (4 * 1024)
#define SESSION_BYE_DRAIN_SERVED  (64 * 1024)

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
        LIST_FIELDS(Session, sessions); /* the server's list of sessions */

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

        bool served;                /* the whole secret went out: the bye delivers it */
        bool bye_alert_sent;        /* our close alert and FIN are out; draining now */
        size_t bye_drained;         /* bytes read and thrown away in the bye */
};

/* Take over an accepted, non-blocking socket. Returns 0 or a negative errno
 * (fd is closed either way). */
int session_new(Server *server, int fd, const struct sockaddr_storage *peer, Session **ret);
Session *session_free(Session *s);

/* Whether the server may drop s to make room for a new connection, and
 * how readily (src/server.c picks the oldest of the highest rank):
 * SESSION_EVICT_REFUSED, a peer refused and in the bye, has nothing left
 * to get; SESSION_EVICT_UNIDENTIFIED, before the handshake ended, may still
 * be a real client; SESSION_EVICT_NEVER for a client waiting for approval,
 * being sent its secret, or in the bye after it (dropping that could reset
 * the connection under the secret; only a peer that proved a configured key
 * gets there, and only for SESSION_SEND_TIMEOUT). */
typedef enum SessionEvict {
        SESSION_EVICT_NEVER,
        SESSION_EVICT_UNIDENTIFIED,
        SESSION_EVICT_REFUSED,
} SessionEvict;
SessionEvict session_evictable(const Session *s);

/* The client's approval, denial, enabling or disabling: look again. */
void session_approval_wake(Session *s);
/* A client's key ID changed or a client was removed: a connection waiting
 * for approval that no longer speaks for its client ends now, with nothing. */
void session_recheck_client(Session *s);

/* The protocol line (docs/PROTOCOL.md, step 1), as read: accepted if its
 * first whitespace-separated field is a Python int ≤ 1. Returns 0 or -EINVAL
 * (also for a NUL byte, or more than SESSION_LINE_MAX bytes). */
int protocol_line_parse(const char *line, size_t size);
