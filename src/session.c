/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "session.h"

#include <assert.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <stdio.h>

#include "log.h"
#include "loop.h"
#include "server.h"
#include "settings.h"
#include "util.h"

static const char *const state_names[_SESSION_STATE_MAX] = {
        [SESSION_READ_LINE] = "the protocol line",
        [SESSION_HANDSHAKE] = "the TLS handshake",
        [SESSION_APPROVAL]  = "the wait for approval",
        [SESSION_SEND]      = "sending",
        [SESSION_BYE]       = "the TLS bye",
};

static const uint64_t state_timeouts[_SESSION_STATE_MAX] = {
        [SESSION_READ_LINE] = SESSION_LINE_TIMEOUT,
        [SESSION_HANDSHAKE] = SESSION_HANDSHAKE_TIMEOUT,
        [SESSION_APPROVAL]  = 0, /* the approval delay itself */
        [SESSION_SEND]      = SESSION_SEND_TIMEOUT,
        [SESSION_BYE]       = SESSION_BYE_REFUSED_TIMEOUT, /* see start_bye() */
};

static void session_step(Session *s);
static void approval_timed_out(Session *s);

Session *session_free(Session *s) {
        if (!s)
                return NULL;
        server_session_unlink(s->server, s);
        if (s->approval_waiting)
                client_approval_wait_end(s->client);
        s->io = sd_event_source_disable_unref(s->io);
        s->deadline = sd_event_source_disable_unref(s->deadline);
        if (s->tls)
                gnutls_deinit(s->tls);
        if (s->fd >= 0)
                (void) close(s->fd);
        s->secret = erase_and_free(s->secret, s->secret_size);
        client_unref(s->client);
        free(s);
        return NULL;
}

static LogFields session_fields(const Session *s, const char *message_id) {
        return (LogFields) {
                .message_id = message_id,
                .client = s->client ? s->client->name : NULL,
                .key_id = s->key_id[0] ? s->key_id : NULL,
                .address = s->address,
        };
}

static int on_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        Session *s = userdata;

        assert(s);

        loop_note("the deadline of the connection from %s", s->peer);
        LogFields f = session_fields(s, NULL);

        if (s->state == SESSION_APPROVAL) {
                approval_timed_out(s);
                return 0;
        }
        log_struct(LOG_WARNING, &f, "Connection from %s timed out during %s", s->peer, state_names[s->state]);
        session_free(s);
        return 0;
}

static void set_state_until(Session *s, SessionState state, uint64_t timeout) {
        uint64_t now;
        int r;

        s->state = state;
        r = sd_event_now(s->server->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_source_set_time(s->deadline, now + timeout);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->deadline, SD_EVENT_ONESHOT);
        if (r < 0)
                log_error_errno(r, "Failed to arm a connection deadline: %m");
}

static void set_state(Session *s, SessionState state) {
        set_state_until(s, state, state_timeouts[state]);
}

/* Wait for the socket to be readable or writable, as TLS needs next. */
static void wait_for_tls(Session *s) {
        uint32_t events = gnutls_record_get_direction(s->tls) ? EPOLLOUT : EPOLLIN;
        (void) sd_event_source_set_io_events(s->io, events);
}

/* The line as Python's repr() would show it, for the log. */
static void describe_line(const Session *s, char *buf, size_t size) {
        size_t n = 0;
        for (size_t i = 0; i < s->line_size && n + 5 < size; i++) {
                unsigned char c = (unsigned char) s->line[i];
                if (c == '\n' || c == '\r' || c == '\t')
                        n += (size_t) snprintf(buf + n, size - n, "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
                else if (isprint(c) && c != '\\' && c != '\'')
                        buf[n++] = (char) c;
                else
                        n += (size_t) snprintf(buf + n, size - n, "\\x%02x", c);
        }
        buf[n] = 0;
}

int protocol_line_parse(const char *line, size_t size) {
        char text[SESSION_LINE_MAX + 1], *field, *save = NULL;
        long version;

        if (size > SESSION_LINE_MAX || memchr(line, 0, size))
                return -EINVAL;
        memcpy(text, line, size);
        text[size] = 0;
        field = strtok_r(text, " \t\r\n\v\f", &save);
        if (!field || parse_python_int(field, &version) < 0 || version > 1)
                return -EINVAL;
        return 0;
}

static bool protocol_line_ok(Session *s) {
        char shown[4 * 64 + 8];

        describe_line(s, shown, sizeof(shown));
        log_debug("Protocol version: '%s'", shown);
        if (protocol_line_parse(s->line, s->line_size) < 0) {
                log_error("Unknown protocol version: '%s'", shown);
                return false;
        }
        return true;
}

/* Read up to and including the first LF, never further: what follows is TLS. */
static int read_line(Session *s) {
        char buf[SESSION_LINE_MAX];
        size_t room = sizeof(s->line) - s->line_size;
        ssize_t n;
        char *lf;

        n = recv(s->fd, buf, room, MSG_PEEK);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                return -ECONNRESET;
        lf = memchr(buf, '\n', (size_t) n);
        if (lf)
                n = lf - buf + 1;
        n = recv(s->fd, s->line + s->line_size, (size_t) n, 0);
        if (n <= 0)
                return n < 0 ? -errno : -ECONNRESET;
        s->line_size += (size_t) n;
        if (lf)
                return 1;
        if (s->line_size >= sizeof(s->line))
                return -E2BIG;
        return 0;
}

static void start_handshake(Session *s) {
        int r = tls_session_new(&s->server->tls, s->fd, &s->tls);
        if (r < 0) {
                log_error_errno(r, "Failed to set up TLS: %m");
                session_free(s);
                return;
        }
        set_state(s, SESSION_HANDSHAKE);
        session_step(s);
}

/* Refused peers get a short bye; a served one the time to take its secret. */
static void start_bye(Session *s) {
        set_state_until(s, SESSION_BYE, s->served ? SESSION_SEND_TIMEOUT : SESSION_BYE_REFUSED_TIMEOUT);
        session_step(s);
}

static void approval_end(Session *s);

/* Why the connection no longer speaks for its client, or NULL if it does:
 * it is served only while the key it proved is the client's key_id and the
 * server still finds this very client under it. A key replaced in
 * clients.conf (man/mandos-clients.conf.5.xml, key_id) or a removed client
 * must not be served to a connection made before the change. */
static const char *session_stale(const Session *s) {
        const Client *c = s->client;

        /* (The name table lets go first when a client is removed.) */
        if (c->removed || server_find_client_by_name(s->server, c->name) != c)
                return "the client was removed";
        if (!streq(c->key_id, s->key_id) || server_find_client(s->server, s->key_id) != c)
                return "the client's key ID changed";
        return NULL;
}

/* A stale connection gets nothing: no secret, and no Rejected signal (it is
 * no longer the client's connection), only the TLS bye. */
static bool drop_if_stale(Session *s) {
        const char *why = session_stale(s);

        if (!why)
                return false;
        LogFields f = session_fields(s, NULL);
        log_struct(LOG_WARNING, &f, "Connection from %s for client %s gets nothing: %s since it connected",
                   s->peer, s->client->name, why);
        approval_end(s);
        start_bye(s);
        return true;
}

static void start_send(Session *s) {
        Client *c = s->client;

        /* Checked again right before sending: the wait may have been long. */
        if (drop_if_stale(s))
                return;

        /* A private copy: the client's secret may be replaced meanwhile. */
        s->secret = malloc(c->secret_size ?: 1);
        if (!s->secret) {
                log_oom();
                session_free(s);
                return;
        }
        memcpy(s->secret, c->secret, c->secret_size);
        s->secret_size = c->secret_size;
        set_state(s, SESSION_SEND);
        session_step(s);
}

static void approval_end(Session *s) {
        if (s->approval_waiting) {
                s->approval_waiting = false;
                client_approval_wait_end(s->client);
        }
}

static void reject(Session *s, const char *reason) {
        /* Rejected, then ApprovalPending false: the reference's order. */
        client_rejected(s->client, reason);
        approval_end(s);
        start_bye(s);
}

/* One pass of the reference's approval loop (docs/REFERENCE-BEHAVIOUR.md,
 * Approval). */
static void approval_check(Session *s) {
        Client *c = s->client;
        LogFields f = session_fields(s, NULL);

        if (drop_if_stale(s))
                return;
        if (!c->enabled) {
                log_struct(LOG_INFO, &f, "Client %s is disabled", c->name);
                reject(s, "Disabled");
                return;
        }
        if (c->approved == 1 || c->approval_delay == 0) {
                start_send(s);
                return;
        }
        if (c->approved == 0) {
                f.message_id = MESSAGE_ID_APPROVAL_DENIED;
                log_struct(LOG_WARNING, &f, "Client %s was not approved", c->name);
                reject(s, "Denied");
                return;
        }
        client_need_approval(c);
        /* Wait, watching only for the peer going away: it sends nothing now. */
        (void) sd_event_source_set_io_events(s->io, EPOLLRDHUP);
        (void) sd_event_now(s->server->event, CLOCK_MONOTONIC, &s->approval_since);
        set_state_until(s, SESSION_APPROVAL, s->approval_remaining);
}

void session_recheck_client(Session *s) {
        if (s->state == SESSION_APPROVAL)
                (void) drop_if_stale(s);
}

SessionEvict session_evictable(const Session *s) {
        switch (s->state) {
        case SESSION_READ_LINE:
        case SESSION_HANDSHAKE:
                return SESSION_EVICT_UNIDENTIFIED;
        case SESSION_BYE:
                return s->served ? SESSION_EVICT_NEVER : SESSION_EVICT_REFUSED;
        default:
                return SESSION_EVICT_NEVER; /* waiting for approval, or sending */
        }
}

void session_approval_wake(Session *s) {
        uint64_t now, elapsed;

        if (s->state != SESSION_APPROVAL)
                return;
        (void) sd_event_now(s->server->event, CLOCK_MONOTONIC, &now);
        elapsed = now - s->approval_since;
        s->approval_remaining = s->approval_remaining > elapsed ? s->approval_remaining - elapsed : 0;
        approval_check(s);
}

/* The whole approval delay went by without a decision. */
static void approval_timed_out(Session *s) {
        Client *c = s->client;
        LogFields f = session_fields(s, MESSAGE_ID_APPROVAL_DENIED);

        if (!c->approved_by_default) {
                log_struct(LOG_WARNING, &f, "Client %s timed out while waiting for approval", c->name);
                reject(s, "Approval timed out");
                return;
        }
        /* Unlike the reference, a client disabled meanwhile gets nothing. */
        if (!c->enabled) {
                f.message_id = NULL;
                log_struct(LOG_INFO, &f, "Client %s is disabled", c->name);
                reject(s, "Disabled");
                return;
        }
        start_send(s);
}

/* The peer proved its key: decide what it gets. */
static void on_identified(Session *s) {
        Client *c = server_find_client(s->server, s->key_id);
        LogFields f;

        if (!c) {
                f = session_fields(s, MESSAGE_ID_CLIENT_NOT_FOUND);
                log_struct(LOG_INFO, &f, "Client not found for key ID: %s, address: %s", s->key_id, s->peer);
                server_client_not_found(s->server, s->key_id, s->address);
                start_bye(s);
                return;
        }
        s->client = client_ref(c);
        if (c->enabled && c->approval_delay > 0) {
                s->approval_waiting = true;
                s->approval_remaining = MIN(c->approval_delay, CLIENT_APPROVAL_DELAY_MAX);
                client_approval_wait_begin(c);
        }
        approval_check(s);
}

static void step_handshake(Session *s) {
        const char *why = NULL;
        int r;

        r = gnutls_handshake(s->tls);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || (r < 0 && !gnutls_error_is_fatal(r))) {
                wait_for_tls(s);
                return;
        }
        if (r < 0 && tls_session_refused_key(s->tls)) {
                LogFields f = session_fields(s, NULL);
                log_struct(LOG_WARNING, &f, "Refused the key from %s before checking its signature: %s", s->peer,
                           tls_session_refused_key(s->tls));
                session_free(s);
                return;
        }
        if (r < 0) {
                LogFields f = session_fields(s, NULL);
                log_struct(LOG_WARNING, &f, "Handshake failed: %s", gnutls_strerror(r));
                session_free(s); /* no bye after a failed handshake, as the reference */
                return;
        }
        log_debug("Handshake succeeded");

        r = tls_peer_key_id(s->tls, s->key_id, &why);
        if (r < 0) {
                s->key_id[0] = 0;
                LogFields f = session_fields(s, NULL);
                log_struct(LOG_WARNING, &f, "Bad certificate: %s", why);
                start_bye(s);
                return;
        }
        log_debug("Key ID: %s", s->key_id);
        on_identified(s);
}

static void step_send(Session *s) {
        while (s->secret_sent < s->secret_size) {
                ssize_t n = gnutls_record_send(s->tls, s->secret + s->secret_sent,
                                               s->secret_size - s->secret_sent);
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                        wait_for_tls(s);
                        return;
                }
                if (n < 0) {
                        LogFields f = session_fields(s, NULL);
                        log_struct(LOG_WARNING, &f, "gnutls send failed: %s", gnutls_strerror((int) n));
                        session_free(s);
                        return;
                }
                s->secret_sent += (size_t) n;
        }
        s->secret = erase_and_free(s->secret, s->secret_size);

        LogFields f = session_fields(s, MESSAGE_ID_SECRET_SENT);
        log_struct(LOG_INFO, &f, "Sending secret to %s", s->client->name);
        client_secret_sent(s->client);
        approval_end(s);
        s->served = true;
        start_bye(s);
}

/* Read and throw away what the peer sends until its end of file, within
 * the bound (session.h): never through GnuTLS, which would keep it all. */
static void bye_drain(Session *s) {
        size_t limit = s->served ? SESSION_BYE_DRAIN_SERVED : SESSION_BYE_DRAIN_REFUSED;
        char buf[4096];

        while (s->bye_drained < limit) {
                ssize_t n = recv(s->fd, buf, MIN(sizeof(buf), limit - s->bye_drained), 0);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        session_free(s); /* its end of file (or a reset): done */
                        return;
                }
                s->bye_drained += (size_t) n;
        }
        log_debug("Connection from %s sent more than %zu bytes in the TLS bye: dropping it", s->peer,
                  limit);
        session_free(s);
}

/* The TLS bye: our close alert (GNUTLS_SHUT_WR, see gnutls_bye(3)), a FIN,
 * then bye_drain(). Not GNUTLS_SHUT_RDWR: waiting in GnuTLS for the peer's
 * alert keeps every record the peer sends meanwhile, without bound. */
static void step_bye(Session *s) {
        if (!s->bye_alert_sent) {
                int r = gnutls_bye(s->tls, GNUTLS_SHUT_WR);
                if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
                        wait_for_tls(s);
                        return;
                }
                if (r < 0) {
                        log_debug("GnuTLS bye failed: %s", gnutls_strerror(r));
                        session_free(s);
                        return;
                }
                s->bye_alert_sent = true;
                /* A peer that reads to the end of file, as mandos-client does, gets it now. */
                (void) shutdown(s->fd, SHUT_WR);
                (void) sd_event_source_set_io_events(s->io, EPOLLIN);
        }
        bye_drain(s);
}

static void step_read_line(Session *s) {
        int r = read_line(s);
        if (r == 0)
                return;
        if (r < 0) {
                if (r == -E2BIG)
                        log_error("Unknown protocol version: line longer than %d bytes from %s",
                                  SESSION_LINE_MAX, s->peer);
                else
                        log_debug_errno(r, "Connection from %s closed before the protocol line: %m", s->peer);
                session_free(s);
                return;
        }
        if (!protocol_line_ok(s)) {
                session_free(s);
                return;
        }
        start_handshake(s);
}

static void session_step(Session *s) {
        switch (s->state) {
        case SESSION_READ_LINE:
                step_read_line(s);
                break;
        case SESSION_HANDSHAKE:
                step_handshake(s);
                break;
        case SESSION_SEND:
                step_send(s);
                break;
        case SESSION_BYE:
                step_bye(s);
                break;
        case SESSION_APPROVAL:
                break;
        default:
                abort();
        }
}

static int on_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Session *s = userdata;

        assert(s);

        loop_note("the connection from %s", s->peer);

        if (s->state == SESSION_APPROVAL) {
                LogFields f = session_fields(s, NULL);
                log_struct(LOG_INFO, &f, "Client %s went away while waiting for approval", s->client->name);
                session_free(s);
                return 0;
        }
        session_step(s);
        return 0;
}

/* The address as D-Bus shows it, and the reference's Python tuple for logs. */
static void describe_peer(Session *s, const struct sockaddr_storage *peer) {
        char host[INET6_ADDRSTRLEN] = "?", ifname[IF_NAMESIZE] = "";

        if (peer->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) peer;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                if (in6->sin6_scope_id && !if_indextoname(in6->sin6_scope_id, ifname))
                        snprintf(ifname, sizeof(ifname), "%u", in6->sin6_scope_id);
                snprintf(s->address, sizeof(s->address), "%s%s%s", host, ifname[0] ? "%" : "", ifname);
                snprintf(s->peer, sizeof(s->peer), "('%s', %u, %u, %u)", s->address, ntohs(in6->sin6_port),
                         ntohl(in6->sin6_flowinfo), in6->sin6_scope_id);
        } else if (peer->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) peer;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                snprintf(s->address, sizeof(s->address), "%s", host);
                snprintf(s->peer, sizeof(s->peer), "('%s', %u)", host, ntohs(in->sin_port));
        } else {
                snprintf(s->address, sizeof(s->address), "?");
                snprintf(s->peer, sizeof(s->peer), "?");
        }
}

int session_new(Server *server, int fd, const struct sockaddr_storage *peer, Session **ret) {
        Session *s = calloc(1, sizeof(Session));
        int one = 1, r;

        if (!s) {
                (void) close(fd);
                return -ENOMEM;
        }
        s->server = server;
        s->fd = fd;
        describe_peer(s, peer);
        server_session_link(server, s);

        /* The secret is one small write; don't let Nagle hold it back. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        r = sd_event_add_io(server->event, &s->io, fd, EPOLLIN, on_io, s);
        if (r >= 0)
                r = sd_event_add_time(server->event, &s->deadline, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                      on_deadline, s);
        /* Connections before checkers and housekeeping: a host is waiting. */
        if (r >= 0)
                r = sd_event_source_set_priority(s->io, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_source_set_priority(s->deadline, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0) {
                session_free(s);
                return r;
        }
        log_info("TCP connection from: %s", s->peer);
        set_state(s, SESSION_READ_LINE);
        *ret = s;
        return 0;
}
