/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The Server owns the event loop's sources, the listening socket, the TLS
 * context, the clients (in configuration order, and hashed by key ID and
 * by name) and the open connections. */

#include <systemd/sd-event.h>

#include "list.h"
#include "bus.h"
#include "checker.h"
#include "client.h"
#include "clients-conf.h"
#include "hashmap.h"
#include "session.h"
#include "settings.h"
#include "state.h"
#include "tls.h"

typedef struct Server {
        sd_event *event;
        const Settings *settings;
        TlsContext tls;

        int listen_fd;
        sd_event_source *listen_source;

        Client **clients;          /* in configuration order */
        size_t n_clients;
        size_t n_enabled;          /* for STATUS=; recounted only when n_enabled_stale */
        bool n_enabled_stale;
        Hashmap *by_key_id;        /* the first client with each key ID */
        Hashmap *by_name;

        Bus *bus;                  /* NULL without D-Bus */
        CheckerManager *checkers;
        TimerHeap *timers;         /* the clients' timers */
        ClientOwner client_owner;    /* what the clients get of the server: these, and on_client_event() */
        sd_bus *launcher;          /* the root launcher's channel; NULL without one */
        sd_bus_slot *reload_slot;  /* a reload waiting for the launcher's files */
        bool reload_again;         /* a SIGHUP came meanwhile */

        char *statedir;
        SavedClient **removed;     /* removed at run time, as the state file keeps them */
        size_t n_removed;
        sd_event_source *save_soon;    /* after this loop iteration */
        sd_event_source *save_later;   /* within a few seconds */
        char *import_pickle;       /* the reference's clients.pickle being imported: renamed once our state is saved */
        struct StateWriter *writer;    /* NULL until the clients are all in (src/state-writer.h) */

        LIST_HEAD(Session, sessions); /* open connections, newest first */
        unsigned n_sessions;
        unsigned max_sessions;     /* max_connections, or fewer if file descriptors are short;
                                    * when full, a new one displaces the oldest evictable one
                                    * (session_evictable()) */
        sd_event_source *accept_resume; /* out of file descriptors: accept again later */
        bool stopping;             /* SIGTERM: no new connection, the open ones finish */
        sd_event_source *stop_deadline;
        uint64_t n_secrets_sent;
} Server;

/* SIGTERM/SIGINT: stop accepting (a socket from systemd keeps what comes
 * for the next server), let the connections in flight finish for at most
 * SERVER_STOP_GRACE, then leave the event loop. A second call leaves at
 * once. */
#define SERVER_STOP_GRACE (2 * USEC_PER_SEC)
void server_stop(Server *s);

/* launcher: the channel to the root launcher (src/launcher.h), or NULL; taken. */
int server_new(sd_event *event, const Settings *settings, sd_bus *launcher, Server **ret);
Server *server_free(Server *s);
static inline void server_freep(Server **s) {
        if (*s)
                server_free(*s);
}

/* Create the configured clients, merged with the saved state (NULL: none)
 * as docs/STATE.md, Merging at start, says (src/server-state.c). The
 * clients take their settings from conf (clients_conf_take()). */
int server_add_clients(Server *s, ClientsConf *conf, const State *state);
/* Put a new client in the table (and on the bus), not yet started; it
 * takes config (freed on failure; client_new_take()). */
int server_insert_client(Server *s, ClientSettings *config, const ClientSettings *settings, Client **ret);
/* What the clients report (src/client.h), fanned out to the bus and the
 * state writer (and so to STATUS=, updated at each save). */
void server_on_client_event(Client *c, const ClientEvent *event, void *userdata);

/* The state directory: $STATE_DIRECTORY, else --statedir. Loads the state
 * file unless restore is off; a corrupt one is set aside. Without one, the
 * reference server's clients.pickle there is imported (with conf, which
 * the import needs), and renamed by server_add_clients() once our state is
 * written. *ret may be NULL. */
int server_load_state(Server *s, const ClientsConf *conf, State **ret);
/* Read the reference's clients.pickle from fd (path: for messages) as a
 * State; a refused one is logged at ERROR. */
int server_import_pickle(Server *s, const ClientsConf *conf, int fd, const char *path, State **ret);
/* A change to save: urgent ones after this loop iteration, others within
 * a few seconds; a burst costs one write. */
void server_state_dirty(Server *s, bool urgent);
/* c changed: urgent, its settings, secret or enabled state (written whole);
 * else its times. */
void server_state_client_dirty(Server *s, Client *c, bool urgent);
/* c left the table (server_forget_client()). */
void server_state_forgotten(Server *s, Client *c);
int server_save_state(Server *s);
/* The whole state written at once, synchronously, as a snapshot no journal
 * follows: for an import, before the pickle is renamed, and for
 * --import-pickle, which runs no loop. */
int server_write_state(Server *s);
void server_remember_removed(Server *s, Client *c);
void server_state_done(Server *s);
/* STATUS= for systemd: clients enabled and total, secrets sent. */
void server_notify_status(Server *s);
/* SIGHUP: read clients.conf and clients.d/ again and apply the changes,
 * with RELOADING=1 and READY=1 to systemd around it. Through the launcher
 * (it reads root's files for us), the loop goes on serving until its reply
 * comes; a SIGHUP meanwhile is one more reload after this one (src/server.c). */
void server_reload(Server *s);
/* Apply the configuration: files, the launcher's, or NULL to read the
 * files ourselves (src/server-state.c). */
int server_reload_files(Server *s, ConfFiles *files);

/* Start accepting on fd (taken over). */
int server_listen(Server *s, int fd);

/* The enabled-or-not client with this key ID, or NULL. */
Client *server_find_client(Server *s, const char *key_id);

/* Remove a client at run time (D-Bus RemoveClient): it is disabled, its
 * checker stopped, and it is announced as removed. Connections in flight
 * keep their reference. */
void server_remove_client(Server *s, Client *c);
/* The same; remember: keep it removed across restarts (D-Bus), or not (it
 * left clients.conf). */
void server_forget_client(Server *s, Client *c, bool remember);
/* A new key ID for c (reload), with the table following: each key ID
 * belongs to the first client, in configuration order, that has it. */
int server_set_client_key_id(Server *s, Client *c, const char *key_id);
Client *server_find_client_by_name(Server *s, const char *name);

/* A connection named a key ID no client has (src/session.c): to the bus. */
void server_client_not_found(Server *s, const char *key_id, const char *address);

/* Connections of c waiting for approval look again (approval, denial,
 * enable, disable). */
void server_wake_approval_waiters(Server *s, Client *c);
/* After a key ID change or a removal: connections waiting for approval
 * whose key no longer leads to their client end, with nothing. */
void server_drop_stale_sessions(Server *s);

void server_session_link(Server *s, Session *session);
void server_session_unlink(Server *s, Session *session);
