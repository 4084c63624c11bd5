/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "server.h"

#include <assert.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "launcher.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "util.h"

int server_new(sd_event *event, const Settings *settings, sd_bus *launcher, Server **ret) {
        _cleanup_(server_freep) Server *s = calloc(1, sizeof(Server));
        const char *error_pos = NULL;
        int r;

        if (!s)
                return log_oom();
        s->event = sd_event_ref(event);
        s->settings = settings;
        s->listen_fd = -1;
        s->launcher = launcher;
        /* Keyed by the clients' own strings: 8 bytes a bucket. */
        s->by_key_id = hashmap_new_keyed(offsetof(Client, key_id));
        s->by_name = hashmap_new_keyed(offsetof(Client, name));
        if (!s->by_key_id || !s->by_name)
                return log_oom();

        /* Transient scopes need the manager's manage-units right: root's,
         * ours or the launcher's. */
        r = checker_manager_new(event, settings->max_checkers, settings->debug, geteuid() == 0, launcher,
                                &s->checkers);
        if (r < 0)
                return log_oom();
        r = timer_heap_new(event, &s->timers);
        if (r < 0)
                return log_error_errno(r, "Failed to create the clients' timers: %m");

        s->client_owner = (ClientOwner) { .event = event, .timers = s->timers, .checkers = s->checkers,
                                        .on_event = server_on_client_event, .userdata = s };

        r = tls_context_init(&s->tls, settings->priority, &error_pos);
        if (r < 0) {
                if (r == -ENOMEM)
                        return log_oom();
                log_error_errno(r, "Bad GnuTLS priority string '%s' at '%s': %m", settings->priority,
                                strempty(error_pos));
                return -EINVAL;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        while (s->sessions)
                session_free(s->sessions);
        for (size_t i = 0; i < s->n_clients; i++) {
                client_detach(s->clients[i]);
                client_unref(s->clients[i]);
        }
        free(s->clients);
        server_state_done(s);
        s->checkers = checker_manager_free(s->checkers);
        s->timers = timer_heap_free(s->timers);
        s->reload_slot = sd_bus_slot_unref(s->reload_slot);
        s->launcher = sd_bus_flush_close_unref(s->launcher);
        s->bus = bus_free(s->bus);
        hashmap_free(s->by_key_id);
        hashmap_free(s->by_name);
        s->listen_source = sd_event_source_disable_unref(s->listen_source);
        s->accept_resume = sd_event_source_disable_unref(s->accept_resume);
        s->stop_deadline = sd_event_source_disable_unref(s->stop_deadline);
        if (s->listen_fd >= 0)
                (void) close(s->listen_fd);
        tls_context_done(&s->tls);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void reload_done(Server *s) {
        uint64_t t0 = monotonic_usec();

        /* The parse's memory, freed, stays resident in the heap: the next
         * snapshot's fork would copy its page tables too (at 100,000
         * clients some 300 MB, half the fork's time: 11.7 ms, 5.9 ms after). */
        (void) malloc_trim(0);
        log_debug("Gave the reload's memory back in %.1f ms", (double) (monotonic_usec() - t0) / 1000.0);
        (void) sd_notify(false, "READY=1");
        server_notify_status(s);
        if (s->reload_again && !s->stopping) {
                s->reload_again = false;
                log_info("Reloading the configuration again (a SIGHUP came during the reload)");
                server_reload(s);
        }
}

static int on_configuration(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Server *s = userdata;
        ConfFiles files = {};
        int r;

        loop_note("a reload (the launcher's reply)");
        s->reload_slot = sd_bus_slot_unref(s->reload_slot);
        r = launcher_configuration_reply(reply, &files);
        if (r < 0)
                log_error("Reload refused: the launcher did not hand over the configuration; nothing changed");
        else if (s->stopping)
                log_info("Reload dropped: the server is stopping");
        else
                (void) server_reload_files(s, &files);
        conf_files_done(&files);
        reload_done(s);
        return 0;
}

void server_reload(Server *s) {
        int r;

        if (s->reload_slot) {
                s->reload_again = true;
                return;
        }
        (void) sd_notify(false, "RELOADING=1");
        if (!s->launcher) {
                (void) server_reload_files(s, NULL);
                return reload_done(s);
        }
        /* The files are root's: the launcher reads them for us. */
        r = launcher_read_configuration_async(s->launcher, &s->reload_slot, on_configuration, s);
        if (r < 0) {
                log_error_errno(r, "Reload refused: could not ask the launcher for the configuration: %m");
                reload_done(s);
        }
}

static bool key_id_usable(const char *key_id) {
        return !isempty(key_id) && !streq(key_id, KEY_ID_BLACKLISTED);
}

int server_insert_client(Server *s, ClientSettings *config, const ClientSettings *settings, Client **ret) {
        Client **nv;
        Client *c;
        int r;

        if (hashmap_get(s->by_name, config->name)) {
                r = log_error_errno(EEXIST, "Client %s is defined twice; ignoring the second", config->name);
                client_settings_free(config);
                return r;
        }
        nv = reallocarray(s->clients, s->n_clients + 1, sizeof(Client *));
        if (!nv) {
                client_settings_free(config);
                return log_oom();
        }
        s->clients = nv;

        r = client_new_take(&s->client_owner, config, settings, &c);
        if (r < 0)
                return log_oom();
        if (s->bus) {
                r = bus_add_client(s->bus, c);
                if (r < 0) {
                        client_detach(c);
                        client_unref(c);
                        return r;
                }
        }
        r = hashmap_put(s->by_name, c->name, c);
        if (r < 0) {
                client_unref(c);
                return log_oom();
        }
        /* The first client with a key ID wins (-EEXIST for later ones). */
        if (key_id_usable(c->key_id)) {
                r = hashmap_put(s->by_key_id, c->key_id, c);
                if (r == -ENOMEM) {
                        hashmap_remove(s->by_name, c->name);
                        client_unref(c);
                        return log_oom();
                }
        }
        s->clients[s->n_clients++] = c;
        s->n_enabled_stale = true;
        *ret = c;
        return 0;
}

Client *server_find_client(Server *s, const char *key_id) {
        return hashmap_get(s->by_key_id, key_id);
}

/* Out of file descriptors with no connection to drop: how long to stop accepting. */
#define SERVER_ACCEPT_PAUSE (250 * USEC_PER_MSEC)
/* File descriptors kept for what is not a connection (checkers, bus, state file). */
#define SERVER_FDS_RESERVED 128

/* Make room for a new connection by dropping the oldest session that is
 * not about to get a secret (the list is newest first): a refused peer in
 * the bye before one that has not identified itself yet, which may still
 * be a real client; never a client waiting for approval or being served
 * (session_evictable()). False if there is none. */
static bool server_drop_oldest_evictable(Server *s, const char *why) {
        Session *oldest = NULL;
        SessionEvict best = SESSION_EVICT_NEVER;

        LIST_FOREACH(sessions, x, s->sessions) {
                SessionEvict e = session_evictable(x);
                if (e != SESSION_EVICT_NEVER && e >= best) {
                        best = e;
                        oldest = x;
                }
        }
        if (!oldest)
                return false;
        log_warning("%s: dropping the oldest %s connection, from %s", why,
                    best == SESSION_EVICT_REFUSED ? "refused" : "unauthenticated", oldest->peer);
        session_free(oldest);
        return true;
}

static int on_accept_resume(sd_event_source *source, uint64_t usec, void *userdata) {
        Server *s = userdata;

        assert(s);
        if (s->stopping)
                return 0;
        log_info("Accepting connections again");
        return sd_event_source_set_enabled(s->listen_source, SD_EVENT_ON);
}

/* Out of file descriptors (or memory) with nothing to drop: the listening
 * socket stays readable, so stop watching it for a while rather than spin. */
static void server_pause_accepting(Server *s, int error) {
        uint64_t now;
        int r;

        log_warning_errno(error, "Failed to accept a connection, not accepting for %d ms: %m",
                          (int) (SERVER_ACCEPT_PAUSE / USEC_PER_MSEC));
        /* The timer exists already: nothing here needs a file descriptor. */
        r = sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_source_set_time(s->accept_resume, now + SERVER_ACCEPT_PAUSE);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->accept_resume, SD_EVENT_ONESHOT);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
        if (r < 0)
                log_error_errno(r, "Failed to pause accepting: %m");
}

static int on_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Server *s = userdata;

        assert(s);
        loop_note("accepting connections");

        /* Take what is queued, but let other events in between bursts. */
        for (unsigned i = 0; i < 64; i++) {
                struct sockaddr_storage peer;
                socklen_t len = sizeof(peer);
                Session *session;
                int cfd, r;

                cfd = accept4(fd, (struct sockaddr *) &peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        r = errno;
                        if (r == EAGAIN || r == EINTR || r == ECONNABORTED)
                                return 0;
                        if (r != EMFILE && r != ENFILE && r != ENOBUFS && r != ENOMEM) {
                                log_warning_errno(r, "Failed to accept a connection: %m");
                                return 0;
                        }
                        if (server_drop_oldest_evictable(s, "Out of file descriptors"))
                                continue;
                        server_pause_accepting(s, r);
                        return 0;
                }
                if (s->n_sessions >= s->max_sessions &&
                    !server_drop_oldest_evictable(s, "Too many connections")) {
                        log_warning("Too many connections (%u), none of them to drop: refusing one",
                                    s->n_sessions);
                        (void) close(cfd);
                        continue;
                }
                r = session_new(s, cfd, &peer, &session);
                if (r < 0)
                        log_error_errno(r, "Failed to set up a connection: %m");
        }
        return 0;
}

/* Each connection holds a file descriptor; keep SERVER_FDS_RESERVED for
 * checkers, the bus and the state file even when connections pile up. */
static void server_set_max_sessions(Server *s) {
        struct rlimit rl;

        s->max_sessions = s->settings->max_connections ?: MAX_CONNECTIONS_DEFAULT;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
            rl.rlim_cur >= (rlim_t) s->max_sessions + SERVER_FDS_RESERVED)
                return;
        s->max_sessions = rl.rlim_cur > 2 * SERVER_FDS_RESERVED ? (unsigned) (rl.rlim_cur - SERVER_FDS_RESERVED)
                                                                : (unsigned) MAX(rl.rlim_cur / 2, 1);
        log_info("At most %u connections at once (max_connections is %u, but the file descriptor limit is %llu)",
                 s->max_sessions, s->settings->max_connections, (unsigned long long) rl.rlim_cur);
}

int server_listen(Server *s, int fd) {
        int r;

        server_set_max_sessions(s);
        s->listen_fd = fd;
        r = sd_event_add_io(s->event, &s->listen_source, fd, EPOLLIN, on_accept, s);
        if (r >= 0)
                r = sd_event_source_set_priority(s->listen_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_add_time(s->event, &s->accept_resume, CLOCK_MONOTONIC, UINT64_MAX, 0,
                                      on_accept_resume, s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->accept_resume, SD_EVENT_OFF);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the listening socket: %m");
        (void) listener_log_address(fd);
        return 0;
}

/* Saved at once: enabled, settings, secret (what security rests on); within
 * seconds: times; never: what does not outlive the process. */
static void client_changed(Server *s, Client *c, ClientProperty p) {
        bus_client_changed(s->bus, c, p);
        switch (p) {
        case CLIENT_CHECKER_RUNNING:
        case CLIENT_APPROVAL_PENDING:
                break; /* not kept across restarts */
        case CLIENT_EXPIRES:
        case CLIENT_LAST_CHECKED_OK:
        case CLIENT_LAST_CHECKER_STATUS:
        case CLIENT_LAST_APPROVAL_REQUEST:
        case CLIENT_LAST_ENABLED:
                server_state_client_dirty(s, c, false);
                break;
        default:
                /* Enabled among them: STATUS= counts again. */
                s->n_enabled_stale = true;
                server_state_client_dirty(s, c, true);
        }
}

void server_on_client_event(Client *c, const ClientEvent *e, void *userdata) {
        Server *s = userdata;

        assert(s);
        assert(e);
        /* Each bus_*() does nothing without a bus. */
        switch (e->type) {
        case CLIENT_EVENT_CHANGED:
                client_changed(s, c, e->property);
                break;
        case CLIENT_EVENT_CHECKER_STARTED:
                bus_checker_started(s->bus, c, c->checker_command_expanded);
                break;
        case CLIENT_EVENT_CHECKER_FINISHED:
                bus_checker_completed(s->bus, c, e->exit_code, e->wait_status, c->checker_command_expanded);
                break;
        case CLIENT_EVENT_SECRET_SENT:
                s->n_secrets_sent++;
                bus_got_secret(s->bus, c);
                break;
        case CLIENT_EVENT_REJECTED:
                bus_rejected(s->bus, c, e->reason);
                break;
        case CLIENT_EVENT_NEED_APPROVAL:
                bus_need_approval(s->bus, c, c->approval_delay / USEC_PER_MSEC, c->approved_by_default);
                break;
        case CLIENT_EVENT_APPROVAL_DECIDED:
                server_wake_approval_waiters(s, c);
                break;
        case _CLIENT_EVENT_MAX:
                break;
        }
}

void server_client_not_found(Server *s, const char *key_id, const char *address) {
        if (s->bus)
                bus_client_not_found(s->bus, key_id, address);
}

void server_wake_approval_waiters(Server *s, Client *c) {
        /* A session may end while we look: LIST_FOREACH keeps the next one first. */
        LIST_FOREACH(sessions, session, s->sessions)
                if (session->client == c && session->state == SESSION_APPROVAL)
                        session_approval_wake(session);
}

void server_drop_stale_sessions(Server *s) {
        LIST_FOREACH(sessions, session, s->sessions)
                session_recheck_client(session);
}

/* The table entry for key_id goes to the first client, in configuration
 * order, that has it (after a client left or changed its key ID). */
static void key_id_reassign(Server *s, const char *key_id) {
        hashmap_remove(s->by_key_id, key_id);
        if (!key_id_usable(key_id))
                return;
        for (size_t i = 0; i < s->n_clients; i++)
                if (streq(s->clients[i]->key_id, key_id)) {
                        (void) hashmap_put(s->by_key_id, s->clients[i]->key_id, s->clients[i]);
                        return;
                }
}

int server_set_client_key_id(Server *s, Client *c, const char *key_id) {
        _cleanup_free_ char *old = strdup(c->key_id);
        int r;

        if (!old)
                return -ENOMEM;
        /* The table borrows c->key_id: let go of it before it is freed. */
        if (hashmap_get(s->by_key_id, old) == c)
                hashmap_remove(s->by_key_id, old);
        r = client_set_key_id(c, key_id);
        key_id_reassign(s, old);
        key_id_reassign(s, c->key_id);
        /* A connection made with the old key waits no more (it gets nothing). */
        server_drop_stale_sessions(s);
        return r;
}

Client *server_find_client_by_name(Server *s, const char *name) {
        return hashmap_get(s->by_name, name);
}

void server_remove_client(Server *s, Client *c) {
        server_forget_client(s, c, true);
}

void server_forget_client(Server *s, Client *c, bool remember) {
        size_t i;

        for (i = 0; i < s->n_clients && s->clients[i] != c; i++)
                ;
        if (i == s->n_clients)
                return;
        memmove(s->clients + i, s->clients + i + 1, (s->n_clients - i - 1) * sizeof(Client *));
        s->n_clients--;
        s->n_enabled_stale = true;
        hashmap_remove(s->by_name, c->name);
        /* The next client with the same key ID, if any, takes over. */
        if (hashmap_get(s->by_key_id, c->key_id) == c)
                key_id_reassign(s, c->key_id);
        client_disable_quietly(c);
        client_detach(c);
        /* Disabling woke its waiting connections; none may outlive it. */
        server_drop_stale_sessions(s);
        if (s->bus)
                bus_remove_client(s->bus, c);
        /* The removal outlives a restart (docs/STATE.md, Merging at start,
         * rule 6). */
        if (remember)
                server_remember_removed(s, c);
        server_state_forgotten(s, c);
        client_unref(c);
}

void server_session_link(Server *s, Session *session) {
        LIST_PREPEND(sessions, s->sessions, session);
        s->n_sessions++;
}

void server_session_unlink(Server *s, Session *session) {
        if (!session->sessions_prev && s->sessions != session)
                return; /* not linked */
        LIST_REMOVE(sessions, s->sessions, session);
        s->n_sessions--;
        if (s->stopping && s->n_sessions == 0)
                (void) sd_event_exit(s->event, 0);
}

static int on_stop_deadline(sd_event_source *source, uint64_t usec, void *userdata) {
        Server *s = userdata;

        assert(s);
        log_info("Stopping with %u connections still open", s->n_sessions);
        return sd_event_exit(s->event, 0);
}

void server_stop(Server *s) {
        uint64_t now;
        int r;

        if (s->stopping || s->n_sessions == 0) {
                (void) sd_event_exit(s->event, 0);
                return;
        }
        s->stopping = true;
        if (s->listen_source)
                (void) sd_event_source_set_enabled(s->listen_source, SD_EVENT_OFF);
        if (s->accept_resume)
                (void) sd_event_source_set_enabled(s->accept_resume, SD_EVENT_OFF);
        log_debug("Stopping: letting %u connections finish", s->n_sessions);
        r = sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (r >= 0)
                r = sd_event_add_time(s->event, &s->stop_deadline, CLOCK_MONOTONIC, now + SERVER_STOP_GRACE, 0,
                                      on_stop_deadline, s);
        if (r < 0)
                (void) sd_event_exit(s->event, 0);
}
