/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* A Client: one host's settings and run-time state, and its life cycle
 * (SPEC §4). Only the functions here change a Client; each change is
 * reported through server_client_changed() so that the bus, the log and
 * the state writer all hear of it in one place. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "clients-conf.h"

typedef struct Server Server;

/* What changed; the D-Bus property of the same name. */
typedef enum ClientProperty {
        CLIENT_ENABLED,
        CLIENT_LAST_ENABLED,
        CLIENT_EXPIRES,
        CLIENT_LAST_CHECKED_OK,
        CLIENT_LAST_CHECKER_STATUS,
        _CLIENT_PROPERTY_MAX,
} ClientProperty;

typedef struct Client {
        unsigned n_ref;
        Server *server;
        bool removed;               /* no longer in the server's table */

        /* Settings (from clients.conf, changeable at run time). */
        char *name;
        char *key_id;
        char *fingerprint;
        uint8_t *secret;
        size_t secret_size;
        char *host;
        char *checker_command;
        uint64_t timeout;           /* µs */
        uint64_t extended_timeout;
        uint64_t interval;
        uint64_t approval_delay;
        uint64_t approval_duration;
        bool approved_by_default;
        bool enabled;

        /* Run-time state; times are CLOCK_REALTIME µs, 0 = none. */
        uint64_t created;
        uint64_t last_enabled;
        uint64_t expires;
        uint64_t last_checked_ok;
        int last_checker_status;    /* exit code, -1 killed, -2 never ran */

        sd_event_source *disable_timer;
} Client;

/* A new enabled client expires after its timeout. */
int client_new(Server *server, const ClientConfig *config, Client **ret);
Client *client_ref(Client *c);
Client *client_unref(Client *c);
static inline void client_unrefp(Client **c) {
        if (*c)
                client_unref(*c);
}

void client_enable(Client *c);
/* Disabled clients get nothing until enabled again. */
void client_disable(Client *c);
/* Move expiry to now + usec (only while enabled). */
void client_bump_timeout(Client *c, uint64_t usec);
void client_checked_ok(Client *c);
/* After the secret was sent: bump by extended_timeout. */
void client_secret_sent(Client *c);
/* Stop every timer; the server is letting go of the client. */
void client_detach(Client *c);

uint64_t now_realtime(void);
