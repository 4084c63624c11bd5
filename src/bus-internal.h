/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/* What bus.c (the connection, "/" and the ObjectManager) and bus-client.c
 * (the "/clients/NAME" objects) share. Not for other modules: they use bus.h. */

#include <stdarg.h>
#include <systemd/sd-bus.h>

#include "bus.h"
#include "hashmap.h"

#define BUS_NAME                        "se.recompile.Mandos"
#define BUS_NAME_DEPRECATED             "se.bsnet.fukt.Mandos"
#define BUS_SERVER_INTERFACE            "se.recompile.Mandos"
#define BUS_SERVER_INTERFACE_DEPRECATED "se.bsnet.fukt.Mandos"
/* Ours, beyond the reference: read-only facts about the server and the log level. */
#define BUS_SERVER_INFO_INTERFACE       "se.recompile.Mandos.Server"
#define BUS_CLIENT_INTERFACE            "se.recompile.Mandos.Client"
#define BUS_CLIENT_INTERFACE_DEPRECATED "se.bsnet.fukt.Mandos.Client"
#define BUS_CLIENTS_PATH                "/clients"

#define DBUS_INTERFACE_PROPERTIES     "org.freedesktop.DBus.Properties"
#define DBUS_INTERFACE_INTROSPECTABLE "org.freedesktop.DBus.Introspectable"
#define DBUS_INTERFACE_OBJECT_MANAGER "org.freedesktop.DBus.ObjectManager"
#define DBUS_INTERFACE_PEER           "org.freedesktop.DBus.Peer"

struct Bus {
        sd_bus *bus;
        Server *server;
        /* Exported clients are found by path (bus_client_at()): one named
         * as its path's last element, "/clients/NAME", by the server's
         * table of names; any other in this one, object path → Client,
         * which computes each path from the name (client_object_path()). */
        Hashmap *escaped;
        size_t n_exported;

        sd_bus_slot *root_slots[4];  /* "/": handler, three interfaces */
        sd_bus_slot *client_slots[4];/* "/clients": handler, enumerator, two interfaces */
        sd_bus_slot *disconnected_slot;

        /* Clients added at start-up, exported but not yet announced
         * (bus_announce_later): pending[announced..n_pending), with a
         * reference each. */
        Client **pending;
        size_t n_pending, pending_size, announced;
        sd_event_source *announcer;
};

/* Signals queued on the connection, at most, before announcing more clients. */
#define BUS_ANNOUNCE_QUEUE_MAX 256
#define BUS_ANNOUNCE_RETRY (2 * USEC_PER_MSEC)
#define BUS_ANNOUNCE_SLICE (10 * USEC_PER_MSEC)

/* The object of every client, under both interface names (bus-client.c). */
int bus_export_clients(Bus *b);

/* The reference's object path of a client name, "/clients/foo_bar" for
 * "foo.bar" (mandos-dbus-api(7), VALUES); bytes outside [A-Za-z0-9_.-] become
 * "_xx". */
int bus_client_object_path(const char *name, char **ret);
/* The exported client whose object path is path, or NULL. */
Client *bus_client_at(Bus *b, const char *path);

/* a{sv}: every readable property of the client interface. */
int bus_client_append_properties(sd_bus_message *m, Client *c);
/* a{sa{sv}}: the four interfaces the reference's ObjectManager lists per client. */
int bus_client_append_interfaces(sd_bus_message *m, Client *c);
/* as: their names, for InterfacesRemoved. */
int bus_client_append_interface_names(sd_bus_message *m);

/* Send a message we built; a failure is logged, never fatal to the caller. */
void bus_send(Bus *b, sd_bus_message *m);
/* A signal on both interfaces, the primary one first (mandos-dbus-api(7),
 * DESCRIPTION); types NULL for none. */
void bus_emit_twice(Bus *b, const char *path, const char *const interfaces[2], const char *member,
                    const char *types, va_list ap);
