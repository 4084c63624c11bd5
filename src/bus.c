/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The D-Bus connection and the server object "/" (mandos-dbus-api(7), BUS
 * NAMES AND ACCESS and THE SERVER OBJECT /): both bus names, the server
 * interface under both names, the ObjectManager in the reference's layout, and
 * our read-only server facts. The client objects are in bus-client.c. */
#include <assert.h>
#include <malloc.h>
#include <stdarg.h>

#include "bus-internal.h"
#include "bus-introspect.h"
#include "log.h"
#include "loop.h"
#include "server.h"
#include "socket-util.h"
#include "util.h"

void bus_send(Bus *b, sd_bus_message *m) {
        int r = sd_bus_send(b->bus, m, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send D-Bus signal %s: %m", strempty(sd_bus_message_get_member(m)));
}

void bus_emit_twice(Bus *b, const char *path, const char *const interfaces[2], const char *member,
                    const char *types, va_list ap) {
        for (size_t i = 0; i < 2; i++) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                va_list aq;
                int r;

                r = sd_bus_message_new_signal(b->bus, &m, path, interfaces[i], member);
                if (r >= 0 && types) {
                        va_copy(aq, ap);
                        r = sd_bus_message_appendv(m, types, aq);
                        va_end(aq);
                }
                if (r < 0) {
                        log_error_errno(r, "Failed to build the D-Bus signal %s: %m", member);
                        return;
                }
                bus_send(b, m);
        }
}

static void emit_server_signal(Bus *b, const char *member, const char *types, ...) {
        static const char *const interfaces[2] = { BUS_SERVER_INTERFACE, BUS_SERVER_INTERFACE_DEPRECATED };
        va_list ap;

        va_start(ap, types);
        bus_emit_twice(b, "/", interfaces, member, types, ap);
        va_end(ap);
}

/* ------------------------------------------------------- server interface */

static int method_remove_client(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;
        const char *path;
        Client *c;
        int r;

        assert(b);

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0)
                return r;
        c = bus_client_at(b, path);
        if (!c)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "No client with object path %s", path);
        log_info("Removing client %s (D-Bus RemoveClient)", c->name);
        server_remove_client(b->server, c);
        return sd_bus_reply_method_return(m, NULL);
}

static bool client_exported(Bus *b, Client *c) {
        return c->bus_exported;
}

static int method_get_all_clients(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Bus *b = userdata;
        Server *s;
        int r;

        assert(b);
        s = b->server;

        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "o");
        for (size_t i = 0; r >= 0 && i < s->n_clients; i++)
                if (client_exported(b, s->clients[i]))
                        r = sd_bus_message_append(reply, "o", client_object_path(s->clients[i]->name));
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* a{o…}: each exported client's path and what append() writes for it. */
static int reply_with_clients(sd_bus_message *m, Bus *b, const char *entry_signature,
                              int (*append)(sd_bus_message *, Client *)) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        char array_signature[32];
        Server *s = b->server;
        int r;

        (void) snprintf(array_signature, sizeof(array_signature), "{%s}", entry_signature);
        r = sd_bus_message_new_method_return(m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', array_signature);
        for (size_t i = 0; r >= 0 && i < s->n_clients; i++) {
                Client *c = s->clients[i];

                if (!client_exported(b, c))
                        continue;
                r = sd_bus_message_open_container(reply, 'e', entry_signature);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "o", client_object_path(c->name));
                if (r >= 0)
                        r = append(reply, c);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Used by mandos-monitor: path → the client interface's properties. */
static int method_get_all_clients_with_properties(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return reply_with_clients(m, userdata, "oa{sv}", bus_client_append_properties);
}

/* Used by mandos-ctl: path → the reference's four interfaces
 * (mandos-dbus-api(7), ObjectManager). */
static int get_managed_objects(sd_bus_message *m, Bus *b) {
        return reply_with_clients(m, b, "oa{sa{sv}}", bus_client_append_interfaces);
}

#define UNPRIVILEGED SD_BUS_VTABLE_UNPRIVILEGED /* the bus policy decides who may call */
#define DEPRECATED   SD_BUS_VTABLE_DEPRECATED

/* The two server interfaces are the same but for the deprecation of the
 * second (mandos-dbus-api(7), DESCRIPTION). */
#define SERVER_VTABLE(flags)                                                                                  \
        {                                                                                                      \
                SD_BUS_VTABLE_START(flags),                                                                    \
                SD_BUS_METHOD_WITH_ARGS("RemoveClient", SD_BUS_ARGS("o", object_path), SD_BUS_NO_RESULT,       \
                                        method_remove_client, UNPRIVILEGED),                                   \
                SD_BUS_METHOD("GetAllClients", NULL, "ao", method_get_all_clients, UNPRIVILEGED | DEPRECATED), \
                SD_BUS_METHOD("GetAllClientsWithProperties", NULL, "a{oa{sv}}",                                \
                              method_get_all_clients_with_properties, UNPRIVILEGED | DEPRECATED),              \
                SD_BUS_SIGNAL_WITH_ARGS("ClientAdded", SD_BUS_ARGS("o", objpath), 0),                          \
                SD_BUS_SIGNAL_WITH_ARGS("ClientNotFound", SD_BUS_ARGS("s", key_id, "s", address), 0),          \
                SD_BUS_SIGNAL_WITH_ARGS("ClientRemoved", SD_BUS_ARGS("o", objpath, "s", name), DEPRECATED),    \
                SD_BUS_VTABLE_END,                                                                             \
        }

static const sd_bus_vtable server_vtable[] = SERVER_VTABLE(0);
static const sd_bus_vtable server_vtable_deprecated[] = SERVER_VTABLE(SD_BUS_VTABLE_DEPRECATED);

/* ------------------------------------------------- server facts (ours) */

/* The address and port the server really listens on (it may have been
 * handed a socket), from the socket itself. */
static SocketAddress listen_address(Bus *b) {
        SocketAddress a = {};

        assert(b);
        if (b->server->listen_fd < 0 || socket_bound_address(b->server->listen_fd, &a) < 0)
                return (SocketAddress) {}; /* "" and port 0 */
        return a;
}

static int property_get_listen_address(sd_bus *bus, const char *path, const char *interface,
                                       const char *property, sd_bus_message *reply, void *userdata,
                                       sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", listen_address(userdata).host);
}

static int property_get_listen_port(sd_bus *bus, const char *path, const char *interface, const char *property,
                                    sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "q", listen_address(userdata).port);
}

static int property_get_interface(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        assert(b);

        return sd_bus_message_append(reply, "s", strempty(b->server->settings->interface));
}

static int property_get_service_name(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        assert(b);

        return sd_bus_message_append(reply, "s", strempty(b->server->settings->servicename));
}

static int property_get_client_count(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        assert(b);

        return sd_bus_message_append(reply, "u", (uint32_t) b->n_exported);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_log_level(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", log_level_to_string(log_get_max_level()));
}

static int property_set_log_level(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *value, void *userdata, sd_bus_error *error) {
        const char *s;
        int level, r;

        r = sd_bus_message_read(value, "s", &s);
        if (r < 0)
                return r;
        level = log_level_from_string(s);
        if (level < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "Unknown log level '%s' (CRITICAL, ERROR, WARNING, INFO or DEBUG)", s);
        if (level == log_get_max_level())
                return 0;
        log_set_max_level(level);
        log_info("Log level set to %s over D-Bus", log_level_to_string(level));
        return sd_bus_emit_properties_changed(bus, "/", BUS_SERVER_INFO_INTERFACE, "LogLevel", NULL);
}

static const sd_bus_vtable server_info_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ListenAddress", "s", property_get_listen_address, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ListenPort", "q", property_get_listen_port, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Interface", "s", property_get_interface, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ServiceName", "s", property_get_service_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ClientCount", "u", property_get_client_count, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_WRITABLE_PROPERTY("LogLevel", "s", property_get_log_level, property_set_log_level, 0,
                                 SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void emit_client_count_changed(Bus *b) {
        int r = sd_bus_emit_properties_changed(b->bus, "/", BUS_SERVER_INFO_INTERFACE, "ClientCount", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to send PropertiesChanged(ClientCount): %m");
}

/* -------------------------------------------------------------------- "/" */

static int root_introspect(sd_bus_message *m, Bus *b) {
        _cleanup_(bus_introspect_done) BusIntrospect i = {};
        int r;

        r = bus_introspect_begin(&i, BUS_INTROSPECT_INTROSPECTABLE | BUS_INTROSPECT_PEER |
                                             BUS_INTROSPECT_PROPERTIES | BUS_INTROSPECT_OBJECT_MANAGER);
        if (r < 0)
                return r;
        bus_introspect_interface(&i, BUS_SERVER_INTERFACE, server_vtable);
        bus_introspect_interface(&i, BUS_SERVER_INTERFACE_DEPRECATED, server_vtable_deprecated);
        bus_introspect_interface(&i, BUS_SERVER_INFO_INTERFACE, server_info_vtable);
        if (b->n_exported > 0)
                bus_introspect_child(&i, &BUS_CLIENTS_PATH[1]); /* without the leading slash */
        return bus_introspect_reply(&i, m);
}

/* Runs before sd-bus's own dispatch on "/": Introspect (see
 * bus-introspect.h) and GetManagedObjects (sd-bus's object manager would
 * list other interfaces than the reference's four, and "/" itself). */
static int root_object_handler(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Bus *b = userdata;

        assert(b);

        if (sd_bus_message_is_method_call(m, DBUS_INTERFACE_INTROSPECTABLE, "Introspect"))
                return root_introspect(m, b);
        if (sd_bus_message_is_method_call(m, DBUS_INTERFACE_OBJECT_MANAGER, "GetManagedObjects"))
                return get_managed_objects(m, b);
        return 0;
}

static int export_root(Bus *b) {
        int r;

        r = sd_bus_add_object(b->bus, &b->root_slots[0], "/", root_object_handler, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, &b->root_slots[1], "/", BUS_SERVER_INTERFACE, server_vtable, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, &b->root_slots[2], "/", BUS_SERVER_INTERFACE_DEPRECATED,
                                             server_vtable_deprecated, b);
        if (r >= 0)
                r = sd_bus_add_object_vtable(b->bus, &b->root_slots[3], "/", BUS_SERVER_INFO_INTERFACE,
                                             server_info_vtable, b);
        if (r < 0)
                return log_error_errno(r, "Failed to export the server object: %m");
        return 0;
}

/* ------------------------------------------------------------- life cycle */

/* sd-bus handles one message per iteration of the loop: name it for the
 * loop's stall log (loop.h). */
static int on_bus_message(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint8_t type = 0;

        (void) sd_bus_message_get_type(m, &type);
        if (type == SD_BUS_MESSAGE_METHOD_CALL)
                loop_note("the D-Bus call %s.%s on %s", strna(sd_bus_message_get_interface(m)),
                          strna(sd_bus_message_get_member(m)), strna(sd_bus_message_get_path(m)));
        else
                loop_note("a D-Bus message");
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        log_warning("Lost the connection to the system bus; going on without D-Bus until restarted");
        return 0;
}

static void bus_freep(Bus **b) {
        if (*b)
                bus_free(*b);
}

/* Whether path is not "/clients/" + the name: then the escaped table has it. */
static bool path_escaped(const char *path, const Client *c) {
        return !streq(path + strlen(BUS_CLIENTS_PATH "/"), c->name);
}

/* The escaped table's keys: in a buffer of its own, so that a path from
 * client_object_path() may be looked up in it. */
static const char *client_path_key(const void *client) {
        static char *buf;
        static size_t size;

        return client_object_path_in(((const Client *) client)->name, &buf, &size);
}

int bus_new(Server *server, Bus **ret) {
        static const char *const names[] = { BUS_NAME, BUS_NAME_DEPRECATED };
        _cleanup_(bus_freep) Bus *b = calloc(1, sizeof(Bus));
        int r;

        if (!b)
                return log_oom();
        b->server = server;
        b->escaped = hashmap_new_computed(client_path_key);
        if (!b->escaped)
                return log_oom();

        r = sd_bus_open_system(&b->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        (void) sd_bus_set_description(b->bus, "mandos");
        /* Should the bus go away, serving secrets matters more than D-Bus. */
        (void) sd_bus_set_exit_on_disconnect(b->bus, false);
        r = sd_bus_match_signal(b->bus, &b->disconnected_slot, "org.freedesktop.DBus.Local", NULL,
                                "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, b);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the bus connection: %m");
        r = sd_bus_attach_event(b->bus, server->event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_add_filter(b->bus, NULL, on_bus_message, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");

        /* Objects first, so that whoever sees the names appear finds them. */
        r = export_root(b);
        if (r >= 0)
                r = bus_export_clients(b);
        if (r < 0)
                return r;

        /* Without SD_BUS_NAME_QUEUE sd-bus asks with DO_NOT_QUEUE, like the reference. */
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                r = sd_bus_request_name(b->bus, names[i], 0);
                if (r < 0)
                        return log_error_errno(r, "Failed to acquire the D-Bus name %s: %m", names[i]);
        }
        log_debug("Acquired the D-Bus names %s and %s", BUS_NAME, BUS_NAME_DEPRECATED);
        *ret = TAKE_PTR(b);
        return 0;
}

Bus *bus_free(Bus *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(b->root_slots); i++)
                b->root_slots[i] = sd_bus_slot_unref(b->root_slots[i]);
        for (size_t i = 0; i < ELEMENTSOF(b->client_slots); i++)
                b->client_slots[i] = sd_bus_slot_unref(b->client_slots[i]);
        b->disconnected_slot = sd_bus_slot_unref(b->disconnected_slot);
        if (b->bus) {
                (void) sd_bus_detach_event(b->bus);
                b->bus = sd_bus_flush_close_unref(b->bus);
        }
        for (size_t i = b->announced; i < b->n_pending; i++)
                client_unref(b->pending[i]);
        free(b->pending);
        b->announcer = sd_event_source_disable_unref(b->announcer);
        hashmap_free(b->escaped);
        free(b);
        return NULL;
}

/* InterfacesAdded, then ClientAdded on both interfaces
 * (mandos-dbus-api(7), THE SERVER OBJECT /). */
static void announce(Bus *b, Client *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(b->bus, &m, "/", DBUS_INTERFACE_OBJECT_MANAGER, "InterfacesAdded");
        if (r >= 0)
                r = sd_bus_message_append(m, "o", client_object_path(c->name));
        if (r >= 0)
                r = bus_client_append_interfaces(m, c);
        if (r >= 0)
                bus_send(b, m);
        else
                log_error_errno(r, "Failed to build InterfacesAdded for %s: %m", c->name);
        emit_server_signal(b, "ClientAdded", "o", client_object_path(c->name));
        emit_client_count_changed(b);
}

/* Announce pending clients while the bus connection's queue is short; come
 * back soon for the rest. */
static int on_announce(sd_event_source *s, uint64_t usec, void *userdata) {
        Bus *b = userdata;
        uint64_t queued = 0, end = now_monotonic() + BUS_ANNOUNCE_SLICE;

        assert(b);
        loop_note("announcing clients on D-Bus");

        /* Each round also stops after a slice of time: dbus-daemon may read
         * as fast as we write, and then the queue alone never stops it. */
        for (size_t i = 0; b->announced < b->n_pending; i++) {
                if (sd_bus_get_n_queued_write(b->bus, &queued) < 0 || queued >= BUS_ANNOUNCE_QUEUE_MAX)
                        break;
                if (i % 64 == 63 && now_monotonic() > end)
                        break;
                Client *c = b->pending[b->announced++];
                if (c->bus_pending && client_exported(b, c)) {
                        c->bus_pending = false;
                        announce(b, c);
                }
                client_unref(c);
        }
        if (b->announced < b->n_pending)
                return sd_event_source_set_time_relative(s, BUS_ANNOUNCE_RETRY);
        b->pending = mfree(b->pending);
        b->n_pending = b->pending_size = b->announced = 0;
        b->announcer = sd_event_source_disable_unref(b->announcer);
        /* The messages of a start's announcements (with 100,000 clients,
         * a few hundred megabytes through the heap) leave free pages:
         * give them back. */
        (void) malloc_trim(0);
        return 0;
}

void bus_announce_later(Bus *b) {
        int r;

        if (!b || b->announcer)
                return;
        /* A millisecond of slack, not sd-event's default 250 ms: the
         * announcer comes back BUS_ANNOUNCE_RETRY after each round, and
         * with 250 ms its rounds of some hundred clients would take a
         * minute for 100,000. */
        r = sd_event_add_time_relative(sd_bus_get_event(b->bus), &b->announcer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC,
                                       on_announce, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->announcer, SD_EVENT_ON);
        if (r < 0)
                log_error_errno(r, "Failed to schedule the D-Bus announcements of clients: %m");
}

int bus_add_client(Bus *b, Client *c) {
        _cleanup_free_ char *path = NULL;
        Client *other;
        bool escaped;
        int r;

        r = bus_client_object_path(c->name, &path);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Client '%s' has no name usable on D-Bus; ignoring it", c->name);
        other = bus_client_at(b, path);
        if (other)
                return log_error_errno(EEXIST, "Clients '%s' and '%s' would share the D-Bus object %s; ignoring '%s'",
                                       other->name, c->name, path, c->name);
        /* A name that is its path's last element needs no entry: the server's table finds it. */
        escaped = path_escaped(path, c);
        if (escaped && hashmap_put(b->escaped, path, c) < 0)
                return log_oom();
        c->bus_exported = true;
        b->n_exported++;

        if (!b->announcer) {
                announce(b, c);
                return 0;
        }
        /* Behind the others, in order. */
        if (GREEDY_REALLOC(b->pending, b->pending_size, b->n_pending + 1) < 0) {
                if (escaped)
                        (void) hashmap_remove(b->escaped, path);
                c->bus_exported = false;
                b->n_exported--;
                return log_oom();
        }
        b->pending[b->n_pending++] = client_ref(c);
        c->bus_pending = true;
        return 0;
}

void bus_remove_client(Bus *b, Client *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path = NULL;
        const char *p;
        int r;

        if (!b || !client_exported(b, c))
                return;
        /* Computed when the client was exported: client_object_path()'s
         * buffer, which never shrinks, has room for it, so this cannot fail
         * and the escaped table's entry always goes. */
        p = client_object_path(c->name);
        assert(p);
        if (path_escaped(p, c))
                (void) hashmap_remove(b->escaped, p);
        c->bus_exported = false;
        b->n_exported--;
        /* A copy for the signals: client_object_path()'s buffer is reused. */
        path = strdup(p);
        if (!path) {
                log_oom();
                return;
        }
        if (c->bus_pending) {
                /* Never announced: nothing to take back. */
                c->bus_pending = false;
                return;
        }

        /* InterfacesRemoved, then ClientRemoved on both interfaces
         * (mandos-dbus-api(7), THE SERVER OBJECT /). */
        r = sd_bus_message_new_signal(b->bus, &m, "/", DBUS_INTERFACE_OBJECT_MANAGER, "InterfacesRemoved");
        if (r >= 0)
                r = sd_bus_message_append(m, "o", path);
        if (r >= 0)
                r = bus_client_append_interface_names(m);
        if (r >= 0)
                bus_send(b, m);
        else
                log_error_errno(r, "Failed to build InterfacesRemoved for %s: %m", c->name);
        emit_server_signal(b, "ClientRemoved", "os", path, c->name);
        emit_client_count_changed(b);
}

void bus_client_not_found(Bus *b, const char *key_id, const char *address) {
        if (b)
                emit_server_signal(b, "ClientNotFound", "ss", strempty(key_id), strempty(address));
}
