/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* The D-Bus API on the system bus (mandos-dbus-api(7)): bus names
 * se.recompile.Mandos and se.bsnet.fukt.Mandos; "/" with the server interfaces
 * and org.freedesktop.DBus.ObjectManager; "/clients/NAME" with both client
 * interfaces. Everything the bus does to a client goes through client.c;
 * everything a client does reaches the bus through server.c. */

#include <stdbool.h>
#include <stdint.h>

#include "client.h"

typedef struct Bus Bus;
typedef struct Server Server;

/* Connect to the system bus, attach it to the server's event loop, export
 * "/" and request both names. Returns 0 or a negative errno (logged). */
int bus_new(Server *server, Bus **ret);
Bus *bus_free(Bus *b);

/* Export a client (sets c->object_path) and announce it (InterfacesAdded,
 * ClientAdded). Returns -EEXIST (logged) when its path is taken by
 * another client. */
int bus_add_client(Bus *b, Client *c);
/* From now on bus_add_client() exports at once but announces later: from
 * the event loop, while the connection's queue is short, in order. At
 * start-up, 100,000 clients' InterfacesAdded and ClientAdded queued at once
 * took 600 MB, and sending them before serving took ten seconds. A client
 * not yet announced emits no signal. */
void bus_announce_later(Bus *b);
/* Announce the removal (InterfacesRemoved, ClientRemoved) and unexport. */
void bus_remove_client(Bus *b, Client *c);

/* Signals, in the reference's order and on both interface names. */
void bus_client_changed(Bus *b, Client *c, ClientProperty p);
void bus_checker_started(Bus *b, Client *c, const char *command);
void bus_checker_completed(Bus *b, Client *c, int16_t exit_code, int64_t wait_status, const char *command);
void bus_got_secret(Bus *b, Client *c);
void bus_rejected(Bus *b, Client *c, const char *reason);
void bus_need_approval(Bus *b, Client *c, uint64_t timeout_ms, bool approved_by_default);
void bus_client_not_found(Bus *b, const char *key_id, const char *address);
