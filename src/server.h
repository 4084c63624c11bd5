/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The Server owns the event loop's sources, the listening socket, the TLS
 * context, the clients (in configuration order, and hashed by key ID and
 * by name) and the open connections. */

#include <systemd/sd-event.h>

#include "bus.h"
#include "checker.h"
#include "client.h"
#include "clients-conf.h"
#include "hashmap.h"
#include "session.h"
#include "settings.h"
#include "tls.h"

typedef struct Server {
        sd_event *event;
        const Settings *settings;
        TlsContext tls;

        int listen_fd;
        sd_event_source *listen_source;

        Client **clients;          /* in configuration order */
        size_t n_clients;
        Hashmap *by_key_id;        /* the first client with each key ID */
        Hashmap *by_name;

        Bus *bus;                  /* NULL without D-Bus */
        CheckerManager *checkers;

        Session *sessions;         /* open connections */
        unsigned n_sessions;
        uint64_t n_secrets_sent;
} Server;

int server_new(sd_event *event, const Settings *settings, Server **ret);
Server *server_free(Server *s);
static inline void server_freep(Server **s) {
        if (*s)
                server_free(*s);
}

/* Create a Client for each configured one. */
int server_add_clients(Server *s, const ClientsConf *conf);

/* Start accepting on fd (taken over). */
int server_listen(Server *s, int fd);

/* The enabled-or-not client with this key ID, or NULL. */
Client *server_find_client(Server *s, const char *key_id);

/* Remove a client at run time (D-Bus RemoveClient): it is disabled, its
 * checker stopped, and it is announced as removed. Connections in flight
 * keep their reference. */
void server_remove_client(Server *s, Client *c);
Client *server_find_client_by_name(Server *s, const char *name);

/* Events reported by clients and sessions: the one path to the bus (and,
 * later, the state writer). */
void server_client_changed(Server *s, Client *c, ClientProperty p);
void server_client_not_found(Server *s, const char *key_id, const char *address);
void server_checker_started(Server *s, Client *c);
void server_checker_completed(Server *s, Client *c, int16_t exit_code, int64_t wait_status);
void server_got_secret(Server *s, Client *c);
void server_rejected(Server *s, Client *c, const char *reason);
void server_need_approval(Server *s, Client *c);

/* Connections of c waiting for approval look again (approval, denial,
 * enable, disable). */
void server_wake_approval_waiters(Server *s, Client *c);

void server_session_link(Server *s, Session *session);
void server_session_unlink(Server *s, Session *session);
