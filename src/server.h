/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The Server owns the event loop's sources, the listening socket, the TLS
 * context, the clients (in configuration order, and hashed by key ID and
 * by name) and the open connections. */

#include <systemd/sd-event.h>

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

/* Events reported by clients and sessions. */
void server_client_changed(Server *s, Client *c, ClientProperty p);
void server_client_not_found(Server *s, const char *key_id, const char *address);
void server_secret_sent(Server *s, Client *c);

void server_session_link(Server *s, Session *session);
void server_session_unlink(Server *s, Session *session);
